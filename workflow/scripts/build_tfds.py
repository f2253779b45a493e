"""Write TFDS datasets (array_record) under DATA_DIR/<tfds_name>/<version>/.

shapes:   --raw SPLIT=raw.npz and --features SPLIT=features.npz for each split (+ optional
          --encoder-params, --encoder-metrics copied to <dataset>/encoder/) → shapes_logits,
          shapes_noimg, shapes.
celeba:   --root CELEBA_DIR --features features.npz [--split-rule custom|official]
          [--variants ...] → byol_celeb_a2_logits, byol_celeb_a2_noimg, byol_celeb_a2.
imagenet: --features features.npz → byol_imagenet2012.
"""

import argparse
import sys

from noisy_emcom.data import builders
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import setup_logging


def _pairs(items, flag):
    out = {}
    for item in items or []:
        split, sep, path = item.partition("=")
        if not sep:
            raise DataError(f"{flag} expects SPLIT=PATH, got {item!r}")
        out[split] = path
    return out


def main(argv=None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--family", required=True, choices=["shapes", "celeba", "imagenet"])
    p.add_argument("--data-dir", required=True, help="TFDS data directory")
    p.add_argument("--version", default=builders.REEXTRACTED)
    p.add_argument("--raw", action="append", help="shapes: SPLIT=raw.npz (repeat)")
    p.add_argument(
        "--features",
        action="append",
        help="shapes: SPLIT=features.npz (repeat); celeba/imagenet: one .npz",
    )
    p.add_argument("--encoder-params", help="shapes: encoder parameters .npz")
    p.add_argument("--encoder-metrics", help="shapes: encoder metrics .json")
    p.add_argument("--root", help="celeba: raw CelebA folder")
    p.add_argument("--split-rule", default="custom", choices=["custom", "official"])
    p.add_argument("--variants", nargs="+", default=["celeba_logits", "celeba_noimg", "celeba"])
    p.add_argument("--overwrite", action="store_true", help="replace existing datasets")
    a = p.parse_args(argv)
    try:
        if a.family == "shapes":
            outs = builders.build_shapes(
                _pairs(a.raw, "--raw"),
                _pairs(a.features, "--features"),
                a.data_dir,
                version=a.version,
                encoder_params=a.encoder_params,
                encoder_metrics=a.encoder_metrics,
                overwrite=a.overwrite,
            )
        else:
            if not a.features or len(a.features) != 1:
                raise DataError("--features must be given once for celeba/imagenet")
            if a.family == "celeba":
                if not a.root:
                    raise DataError("--root (the raw CelebA folder) is required")
                outs = builders.build_celeba(
                    a.root,
                    a.features[0],
                    a.data_dir,
                    version=a.version,
                    split_rule=a.split_rule,
                    variants=a.variants,
                    overwrite=a.overwrite,
                )
            else:
                outs = [
                    builders.build_imagenet(
                        a.features[0], a.data_dir, version=a.version, overwrite=a.overwrite
                    )
                ]
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for out in outs:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
