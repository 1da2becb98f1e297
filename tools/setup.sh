#!/usr/bin/env bash
# tools/setup.sh: install the system libraries memloss links against (Debian: liblz4-dev,
# libopenblas-dev, pkg-config, and Open MPI's libopenmpi-dev + openmpi-bin for data-parallel
# training, docs/distributed.md) when they are missing. Idempotent; needs root (or sudo) only when
# something is actually missing. Used by the README's commands and by .ci/run.
# Then, best effort, create the Python cross-check venv `.venv-tools` (numpy + safetensors from
# PyPI) used by tools/check_safetensors.py and the tests that call it; a failure there only warns
# (those tests skip), it never fails setup.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

# MARK: - System libraries (required)

need=()
for pkg in liblz4-dev libopenblas-dev pkg-config libopenmpi-dev openmpi-bin; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        need+=("$pkg")
    fi
done

if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}" >&2
    if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
        echo "setup: missing packages (${need[*]}) and not root; run as root or install them by hand" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# MARK: - Python cross-check venv (best effort)

setup_python_tools() {
    local root venv py
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="$root/.venv-tools"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import numpy, safetensors' >/dev/null 2>&1; then
        return 0
    fi
    py="$(command -v python3 || true)"
    if [ -z "$py" ]; then
        echo "setup: warning: python3 not found" >&2
        return 1
    fi
    echo "setup: creating $venv (numpy, safetensors)" >&2
    # Debian's python3 has `-m venv --help` without ensurepip; creation then fails until
    # python3-venv is installed, so try the package once on either failure.
    if ! { "$py" -m venv --help >/dev/null 2>&1 && "$py" -m venv --clear "$venv" >&2; }; then
        echo "setup: python3 -m venv failed; trying apt-get install python3-venv" >&2
        if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
            return 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        { $SUDO apt-get install -y -q --no-install-recommends python3-venv >&2 \
            || { $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q --no-install-recommends python3-venv >&2; }; } \
            || return 1
        "$py" -m venv --clear "$venv" >&2 || return 1
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check numpy safetensors >&2 || return 1
    "$venv/bin/python" -c 'import numpy, safetensors' >/dev/null 2>&1 || return 1
}

if ! setup_python_tools; then
    # A half-built venv would make the cross-check tests fail instead of skip: remove it.
    rm -rf "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv-tools"
    echo "setup: warning: could not create .venv-tools; the Python cross-check tests will be skipped" >&2
fi
exit 0
