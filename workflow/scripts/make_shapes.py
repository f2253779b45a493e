"""Generate one raw `shapes` split (docs/data.md#shapes) as an .npz file.

Writes OUT (.npz: image, label, image_id, attributes, landmarks, factor_*), atomically.
"""

import argparse
import sys

from noisy_emcom.data.builders import make_shapes
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import setup_logging


def main(argv=None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--split", required=True, choices=["train", "valid", "test"])
    p.add_argument("--num", type=int, required=True, help="number of examples")
    p.add_argument("--seed", type=int, default=0, help="dataset seed")
    p.add_argument("--out", required=True, help="output .npz")
    a = p.parse_args(argv)
    try:
        make_shapes(a.split, a.num, a.seed, a.out)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
