#!/usr/bin/env python
"""Build a user dataset (docs/data.md#your-own-data) as a TFDS dataset `own_<name>`.

    python workflow/scripts/build_own.py --dataset mydata --table my_table.npz \
        --data-dir results/tfds
    python workflow/scripts/build_own.py --dataset glyphs --images data/glyphs \
        --data-dir results/tfds \
        [--file-list list.csv] [--checkpoint pretrain_res50x1.pkl] [--encoder-width 64 ...]

A table (.npy, .npz, .parquet) is written as it is (split 75/25, stratified by label, when it
has no splits); images are resized to 64×64 and encoded by the BYOL ResNet-50 (with
--checkpoint) or by the project's small CNN trained on the training split's labels. Writes
<data-dir>/own_<name>/1.0.0/ with provenance.json (source, content hashes, encoder, splits).
"""

import argparse
import sys

from noisy_emcom.data import own
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import setup_logging


def main(argv: list[str]) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="name: lowercase [a-z0-9_]")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", help=".npy, .npz or .parquet feature table")
    src.add_argument("--images", help="folder of images (one sub-folder per class)")
    parser.add_argument("--file-list", default="", help="CSV: path[,label][,split][,attrs...]")
    parser.add_argument("--checkpoint", default="", help="BYOL ResNet-50 checkpoint (images)")
    parser.add_argument("--data-dir", required=True, help="TFDS data directory")
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--split-seed", type=int, default=0)
    for key, kind in (
        ("width", int),
        ("steps", int),
        ("batch-size", int),
        ("learning-rate", float),
        ("seed", int),
    ):
        parser.add_argument(f"--encoder-{key}", type=kind, default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    encoder = {
        k: getattr(args, f"encoder_{k}")
        for k in ("width", "steps", "batch_size", "learning_rate", "seed")
        if getattr(args, f"encoder_{k}") is not None
    }
    try:
        out = own.build(
            args.dataset,
            args.data_dir,
            table=args.table,
            images=args.images,
            file_list=args.file_list or None,
            checkpoint=args.checkpoint or None,
            encoder=encoder,
            test_fraction=args.test_fraction,
            seed=args.split_seed,
            overwrite=args.overwrite,
        )
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print((out / own.PROVENANCE).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
