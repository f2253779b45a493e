"""Extract BYOL ResNet-50 features (docs/data.md#byol-features) from raw CelebA or ImageNet images.

celeba:   reads ROOT/{img_align_celeba/, identity_CelebA.txt, list_attr_celeba.txt,
          list_landmarks_align_celeba.txt}; writes OUT (.npz: logit [N,2048], image_id [N]).
imagenet: reads ROOT/{train,val}/<wnid>/*.JPEG; writes OUT (.npz: <split>_logit,
          <split>_label, <split>_file_name for splits train and test).
"""

import argparse
import json
import sys

from noisy_emcom.data.builders import extract_celeba, extract_imagenet
from noisy_emcom.data.errors import DataError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", required=True, choices=["celeba", "imagenet"])
    p.add_argument("--root", required=True, help="raw dataset folder")
    p.add_argument("--checkpoint", required=True, help="BYOL pretrain_res50x1.pkl")
    p.add_argument("--out", required=True, help="features .npz")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=224)
    a = p.parse_args(argv)
    try:
        if a.source == "celeba":
            n = extract_celeba(
                a.root, a.checkpoint, a.out, batch_size=a.batch_size, image_size=a.image_size
            )
            print(json.dumps({"num_examples": n}))
        else:
            print(
                json.dumps(
                    extract_imagenet(
                        a.root,
                        a.checkpoint,
                        a.out,
                        batch_size=a.batch_size,
                        image_size=a.image_size,
                    )
                )
            )
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
