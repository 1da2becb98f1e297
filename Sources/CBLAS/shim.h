// CBLAS shim: OpenBLAS's cblas interface (Debian: libopenblas-dev, pthread variant).
// Only Kernels/BLAS.swift imports this module.
#pragma once
#include <cblas.h>
