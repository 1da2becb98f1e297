#!/usr/bin/env python3
"""check_safetensors.py: read a safetensors file with the reference `safetensors` package (numpy
API) and print what it holds as JSON, so tests can cross-check the Swift writer.

Usage: .venv-tools/bin/python tools/check_safetensors.py FILE

Output (stdout, one JSON object):
  {"metadata": {...} | null,
   "tensors": {name: {"dtype": "F32", "shape": [..], "values": [..] (first 16, flattened)}},
   "order": [names in data-offset order]}
Exits 0 on success, 1 when the file cannot be read, 2 on bad usage.
"""
import json
import struct
import sys

# numpy dtype name -> safetensors dtype spelling
DTYPES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16",
    "float16": "F16", "int32": "I32", "uint32": "U32", "float32": "F32",
    "float64": "F64", "int64": "I64", "uint64": "U64",
}


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    try:
        from safetensors import safe_open
        from safetensors.numpy import load_file
    except ImportError as e:
        print(f"check_safetensors: cannot import safetensors ({e}); run tools/setup.sh", file=sys.stderr)
        return 1
    try:
        arrays = load_file(path)
        with safe_open(path, framework="np") as f:
            metadata = f.metadata()
            names = list(f.keys())
        # Data-offset order, from the raw header (the package's keys() are sorted by name).
        with open(path, "rb") as raw:
            (n,) = struct.unpack("<Q", raw.read(8))
            header = json.loads(raw.read(n))
        order = sorted((k for k in header if k != "__metadata__"),
                       key=lambda k: tuple(header[k]["data_offsets"]))
    except Exception as e:  # the package raises SafetensorError, OSError, ValueError, ...
        print(f"check_safetensors: {path}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    tensors = {}
    for name in names:
        a = arrays[name]
        tensors[name] = {
            "dtype": DTYPES.get(str(a.dtype), str(a.dtype)),
            "shape": list(a.shape),
            "values": a.reshape(-1)[:16].tolist(),
        }
    json.dump({"metadata": metadata, "tensors": tensors, "order": order}, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
