"""Train the `shapes` CNN encoder (docs/data.md#shapes) on a raw train split.

Reads TRAIN (.npz from make_shapes.py); writes PARAMS (.npz) and METRICS (.json), atomically.
"""

import argparse
import json
import sys

from noisy_emcom.data.builders import train_encoder
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import setup_logging


def main(argv=None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--train", required=True, help="raw train split .npz")
    p.add_argument("--out-params", required=True, help="encoder parameters .npz")
    p.add_argument("--out-metrics", required=True, help="training metrics .json")
    p.add_argument("--width", type=int, default=512, help="feature width D")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        m = train_encoder(
            a.train,
            a.out_params,
            a.out_metrics,
            width=a.width,
            steps=a.steps,
            batch_size=a.batch_size,
            learning_rate=a.learning_rate,
            seed=a.seed,
        )
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
