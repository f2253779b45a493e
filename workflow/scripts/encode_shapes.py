"""Encode one raw `shapes` split with a trained encoder.

Reads PARAMS (.npz from train_encoder.py) and RAW (.npz from make_shapes.py); writes OUT
(.npz: logit [N,D], image_id [N], accuracy []) atomically and prints {num_examples, accuracy}.
"""

import argparse
import json
import sys

from noisy_emcom.data.builders import encode_shapes
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import setup_logging


def main(argv=None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", required=True, help="encoder parameters .npz")
    p.add_argument("--raw", required=True, help="raw split .npz")
    p.add_argument("--out", required=True, help="features .npz")
    a = p.parse_args(argv)
    try:
        print(json.dumps(encode_shapes(a.params, a.raw, a.out)))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
