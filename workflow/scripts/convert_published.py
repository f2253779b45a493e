"""Convert a published TFRecord TFDS folder (docs/data.md) to array_record, version 1.0.0.

Reads SRC (a version folder with <name>-<split>.tfrecord-* shards); writes
DATA_DIR/<tfds_name>/1.0.0/. Needs TensorFlow: pip install -e '.[tf]'.
"""

import argparse
import sys

from noisy_emcom.data.convert import CONVERTED_VERSION, convert_published
from noisy_emcom.data.errors import DataError
from noisy_emcom.data.registry import DATASETS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--src", required=True, help="published dataset version folder")
    p.add_argument(
        "--dataset", required=True, choices=sorted(DATASETS), help="sweep name of the variant"
    )
    p.add_argument("--data-dir", required=True, help="TFDS data directory")
    p.add_argument("--version", default=CONVERTED_VERSION)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    try:
        print(
            convert_published(
                a.src, a.dataset, a.data_dir, version=a.version, overwrite=a.overwrite
            )
        )
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
