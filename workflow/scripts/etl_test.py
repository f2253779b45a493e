#!/usr/bin/env python
"""Test one trained ETL listener (docs/etl.md) and write its result rows.

    python workflow/scripts/etl_test.py --checkpoint $RUN/final.ckpt \
        --listener $RUN/etl/reconstruction-shapes-p0.0-sample/listener.ckpt \
        --data-dir results/tfds --out $RUN/etl/reconstruction-shapes-p0.0-sample/results.csv \
        [--png $RUN/etl/reconstruction-shapes-p0.0-sample/reconstructions.png]

The task, dataset and settings come from the listener checkpoint; the listener must have been
trained on this speaker's messages. --out gets long-format rows (the speaker's identifying
columns, task, etl_dataset, etl_noise, decoding, etl_seed, etl_steps, metric, value); --png
(reconstruction only) a grid of the first 32 test images beside their reconstructions. Both
are written under a temporary name then renamed.
"""

import argparse
import sys

from noisy_emcom import checkpoint, etl
from noisy_emcom.data import registry
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import setup_logging


def main(argv: list[str]) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="speaker's training checkpoint")
    parser.add_argument("--listener", required=True, help="ETL listener checkpoint")
    parser.add_argument("--data-dir", default="", help="TFDS data directory")
    parser.add_argument("--out", required=True, help="result CSV")
    parser.add_argument("--png", default="", help="reconstruction grid PNG")
    args = parser.parse_args(argv)
    try:
        registry.discover(args.data_dir)
        speaker = etl.load_speaker(args.checkpoint)
        rows = etl.run_test(speaker, args.listener, args.data_dir or None, png=args.png or None)
    except (DataError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    etl.write_results(rows, args.out)
    print(f"{rows['task'].iloc[0]}: {len(rows)} rows → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
