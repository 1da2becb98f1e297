// CLZ4 shim: liblz4's block API (Debian: liblz4-dev). Used by the memory bank's codecs.
#pragma once
#include <lz4.h>
#include <lz4hc.h>
