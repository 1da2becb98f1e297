#!/usr/bin/env bash
# tools/setup-torch.sh: create the PyTorch-CPU venv that tools/compare_pytorch.py runs in.
# Idempotent: does nothing when DIR already imports the pinned torch and numpy. Installs only the
# CPU wheel `torch==2.13.0+cpu` (never the default multi-GB CUDA build) plus numpy; the test suite
# never needs this venv. Usage: tools/setup-torch.sh [DIR]   (default /work/venv-torch)
set -euo pipefail

TORCH_PIN='torch==2.13.0+cpu'
TORCH_VERSION='2.13.0+cpu'
venv="${1:-/work/venv-torch}"

has_torch() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$TORCH_VERSION" <<'EOF' >/dev/null 2>&1
import sys
import numpy  # noqa: F401
import torch
sys.exit(0 if torch.__version__ == sys.argv[1] else 1)
EOF
}

if has_torch; then
    echo "setup-torch: $venv already has $TORCH_PIN and numpy" >&2
    exit 0
fi

py="$(command -v python3 || true)"
if [ -z "$py" ]; then
    echo "setup-torch: python3 not found; install it (apt-get install python3 python3-venv)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "setup-torch: creating $venv" >&2
    if ! "$py" -m venv "$venv"; then
        echo "setup-torch: '$py -m venv $venv' failed; on Debian install python3-venv" >&2
        exit 1
    fi
fi
echo "setup-torch: installing $TORCH_PIN numpy into $venv" >&2
"$venv/bin/pip" install "$TORCH_PIN" numpy
if ! has_torch; then
    echo "setup-torch: $venv still does not import torch $TORCH_VERSION after the install" >&2
    exit 1
fi
echo "setup-torch: done; run: $venv/bin/python tools/compare_pytorch.py --help" >&2
