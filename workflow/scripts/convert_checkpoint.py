#!/usr/bin/env python
"""Convert a checkpoint of the former pickle-based format (NEMCKPT1) to the current one.

    python workflow/scripts/convert_checkpoint.py --trusted OLD.ckpt [NEW.ckpt]

WARNING: this UNPICKLES the old file, and unpickling runs whatever code the file holds. Run it
only on files you wrote yourself or otherwise trust (hence the required --trusted). Without
NEW.ckpt the old file is replaced, atomically. A converted mid-run checkpoint has no record of
its logging window: the first log row after a resume averages only the steps after it.
"""

import argparse
import hashlib
import pickle
import sys
from pathlib import Path

from noisy_emcom import checkpoint


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trusted", action="store_true", help="I trust this file's contents")
    parser.add_argument("old", help="checkpoint of the NEMCKPT1 format")
    parser.add_argument("new", nargs="?", default="", help="output (default: replace OLD)")
    args = parser.parse_args(argv)
    if not args.trusted:
        parser.error("this unpickles OLD, which can run code: pass --trusted for a trusted file")
    data = Path(args.old).read_bytes()
    if data[:8] != checkpoint.OLD_MAGIC:
        print(f"error: {args.old} is not a NEMCKPT1 checkpoint", file=sys.stderr)
        return 1
    if hashlib.sha256(data[40:]).digest() != data[8:40]:
        print(f"error: {args.old}: checksum mismatch (truncated or corrupt file)", file=sys.stderr)
        return 1
    payload = pickle.loads(data[40:])  # trusted by the caller (--trusted)
    payload.pop("format_version", None)
    checkpoint.save_checkpoint(args.new or args.old, payload)
    print(f"{args.old} → {args.new or args.old}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
