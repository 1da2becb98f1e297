#!/usr/bin/env bash
# tools/setup.sh: install the system libraries memloss links against (Debian: liblz4-dev,
# libopenblas-dev, pkg-config) when they are missing. Idempotent; needs root (or sudo) only when
# something is actually missing. Used by the README's commands and by .ci/run.
set -euo pipefail

need=()
for pkg in liblz4-dev libopenblas-dev pkg-config; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        need+=("$pkg")
    fi
done

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

echo "setup: installing ${need[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup: missing packages (${need[*]}) and not root; run as root or install them by hand" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
