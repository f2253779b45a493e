"""Writing TFDS datasets in `array_record` format without TensorFlow, and reading them with
`tfds.data_source`.

A dataset is given as flat numpy arrays per split (`logit` [N,D], `image_id` [N], `label` [N],
`attributes` [N,40] bool, `landmarks` [N,10], `factor_<name>` [N], `image` [N,64,64,3],
`file_name` [N] str); this module nests them into the feature dicts of docs/data.md. Records keep
the given order (shuffling disabled), so all variants of a family share split order.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from noisy_emcom.data import shapes
from noisy_emcom.data.errors import DataError
from noisy_emcom.data.registry import OPTIONAL_FIELDS, DatasetSpec

FILE_FORMAT = "array_record"
VERSION_FOLDER = re.compile(r"\d+\.\d+\.\d+")  # a version folder's name

DESCRIPTIONS = {
    "imagenet": "ILSVRC-2012 images encoded by the BYOL ResNet-50 (1x) trunk: 2048-d pooled "
    "features and the class label (rank of the sorted WordNet id).",
    "celeba": "CelebA aligned faces encoded by the BYOL ResNet-50 (1x) trunk: 2048-d pooled "
    "features, identity, 40 attributes, 5 landmarks and (image variant) a 64x64 crop.",
    "shapes": "Procedurally generated 64x64 images of coloured shapes (noisy_emcom docs/data.md) "
    "encoded by a small CNN trained on the 48 shape-colour classes.",
}
CITATIONS = {
    "imagenet": "@article{ILSVRC15, title={ImageNet Large Scale Visual Recognition Challenge},"
    " author={Russakovsky, Olga and others}, journal={IJCV}, year={2015}}\n"
    "@inproceedings{grill2020byol, title={Bootstrap Your Own Latent}, "
    "author={Grill, Jean-Bastien and others}, booktitle={NeurIPS}, year={2020}}",
    "celeba": "@inproceedings{liu2015faceattributes, title={Deep Learning Face Attributes in "
    "the Wild}, author={Liu, Ziwei and Luo, Ping and Wang, Xiaogang and Tang, Xiaoou}"
    ", booktitle={ICCV}, year={2015}}\n"
    "@inproceedings{grill2020byol, title={Bootstrap Your Own Latent}, "
    "author={Grill, Jean-Bastien and others}, booktitle={NeurIPS}, year={2020}}",
    "own": "",
    "shapes": "@inproceedings{vital2025implicit, title={Implicit Repair with Reinforcement "
    "Learning in Emergent Communication}, author={Vital, F{\\'a}bio and Sardinha, "
    "Alberto and Melo, Francisco S.}, booktitle={AAMAS}, year={2025}}",
}
RELEASE_NOTES = {
    "1.0.0": "Converted from the TFRecord datasets published with the predecessor work.",
    "2.0.0": "Re-extracted by noisy_emcom from the raw images.",
}


def features_for(
    spec: DatasetSpec, feature_dim: int, with_file_name: bool = False
) -> tfds.features.FeaturesDict:
    """The FeaturesDict of a variant (images as raw uint8 tensors: no TensorFlow needed)."""
    f: dict = {"logit": tfds.features.Tensor(shape=(feature_dim,), dtype=np.float32)}
    if "image_id" in spec.fields:
        f["image_id"] = tfds.features.Scalar(dtype=np.int64)
    if "label" in spec.fields:
        f["label"] = tfds.features.Scalar(dtype=np.int64)
    if "attributes" in spec.fields:
        f["attributes"] = {n: tfds.features.Scalar(dtype=np.bool_) for n in spec.attribute_names}
    if "landmarks" in spec.fields:
        f["landmarks"] = {n: tfds.features.Scalar(dtype=np.int64) for n in spec.landmark_names}
    if "factors" in spec.fields:
        f["factors"] = {
            n: tfds.features.Scalar(dtype=np.int64 if i < 4 else np.float32)
            for i, n in enumerate(shapes.FACTOR_NAMES)
        }
    if "image" in spec.fields:
        f["image"] = tfds.features.Tensor(shape=(64, 64, 3), dtype=np.uint8)
    if with_file_name:
        f["file_name"] = tfds.features.Text()
    return tfds.features.FeaturesDict(f)


def check_arrays(
    spec: DatasetSpec, split: str, arrays: Mapping[str, np.ndarray], feature_dim: int
) -> int:
    """Check that `arrays` hold every field of `spec` with consistent lengths → N."""
    need = {
        "logit": (feature_dim,),
        "image_id": (),
        "label": (),
        "attributes": (len(spec.attribute_names),),
        "landmarks": (len(spec.landmark_names),),
        "image": (64, 64, 3),
    }
    n = len(arrays["logit"]) if "logit" in arrays else None
    for field in spec.fields:
        keys = [f"factor_{k}" for k in shapes.FACTOR_NAMES] if field == "factors" else [field]
        for key in keys:
            if key not in arrays:
                raise DataError(f"{spec.tfds_name}/{split}: missing array {key!r}")
            a = arrays[key]
            want = need.get(field, ())
            if tuple(a.shape[1:]) != want or len(a) != n:
                raise DataError(
                    f"{spec.tfds_name}/{split}: array {key!r} has shape "
                    f"{tuple(a.shape)}, expected ({n}, {', '.join(map(str, want))})"
                )
    return int(n)


def examples(spec: DatasetSpec, arrays: Mapping[str, np.ndarray]) -> Iterator[tuple[int, dict]]:
    """(key, nested example) per row of flat `arrays`, keys 0..N−1 in order."""
    n = len(arrays["logit"])
    for i in range(n):
        ex: dict = {"logit": arrays["logit"][i]}
        for k in ("image_id", "label"):
            if k in spec.fields:
                ex[k] = int(arrays[k][i])
        if "attributes" in spec.fields:
            ex["attributes"] = dict(
                zip(spec.attribute_names, arrays["attributes"][i].tolist(), strict=True)
            )
        if "landmarks" in spec.fields:
            ex["landmarks"] = dict(
                zip(spec.landmark_names, arrays["landmarks"][i].tolist(), strict=True)
            )
        if "factors" in spec.fields:
            ex["factors"] = {k: arrays[f"factor_{k}"][i] for k in shapes.FACTOR_NAMES}
        if "image" in spec.fields:
            ex["image"] = arrays["image"][i]
        if "file_name" in arrays:
            ex["file_name"] = str(arrays["file_name"][i])
        yield i, ex


class _ArrayBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder whose name, version, features and split arrays are given per instance."""

    def __init__(
        self, *, spec: DatasetSpec, version: str, features, splits, description: str, **kwargs
    ):
        self.name = spec.tfds_name
        self.VERSION = tfds.core.Version(version)
        self.RELEASE_NOTES = RELEASE_NOTES
        self._spec, self._features, self._splits = spec, features, splits
        self._description = description
        super().__init__(version=version, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self._description,
            features=self._features,
            citation=CITATIONS[self._spec.family],
            disable_shuffling=True,
            supervised_keys=("logit", "label") if "label" in self._spec.fields else None,
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {name: examples(self._spec, arrays) for name, arrays in self._splits.items()}

    def _generate_examples(self, **kwargs):
        raise NotImplementedError  # splits are generated from the given arrays


def write_dataset(
    spec: DatasetSpec,
    version: str,
    data_dir: str | Path,
    splits: Mapping[str, Mapping[str, np.ndarray]],
    *,
    feature_dim: int,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one variant as `<data_dir>/<tfds_name>/<version>/` (array_record) → its path.

    TFDS writes into an `incomplete.*` folder and renames it when done, so the final folder
    never holds a half-written dataset. An existing folder is an error unless `overwrite`.
    """
    for split, arrays in splits.items():
        if check_arrays(spec, split, arrays, feature_dim) == 0:
            raise DataError(
                f"{spec.tfds_name}: split {split!r} is empty (TFDS cannot write "
                "an empty split; use more images)"
            )
    out = Path(data_dir) / spec.tfds_name / version
    if out.exists():
        if not overwrite:
            raise DataError(f"{out}: dataset already exists (delete it or pass overwrite)")
        shutil.rmtree(out)
    with_names = "file_name" in OPTIONAL_FIELDS.get(spec.sweep, ()) and all(
        "file_name" in a for a in splits.values()
    )
    builder = _ArrayBuilder(
        spec=spec,
        version=version,
        features=features_for(spec, feature_dim, with_file_name=with_names),
        splits=splits,
        description=description or DESCRIPTIONS[spec.family],
        data_dir=str(data_dir),
        file_format=FILE_FORMAT,
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return out


def versions(data_dir: str | Path, tfds_name: str) -> list[str]:
    """Prepared versions (folders `X.Y.Z` with dataset_info.json), ascending; other folders
    (a backup `1.0.0.bak/`, TFDS's `incomplete.*`) are ignored."""
    root = Path(data_dir) / tfds_name
    if not root.is_dir():
        return []
    found = [
        p.name
        for p in root.iterdir()
        if VERSION_FOLDER.fullmatch(p.name) and (p / "dataset_info.json").is_file()
    ]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def data_source(data_dir: str | Path, tfds_name: str, version: str | None = None):
    """`tfds.data_source` of a prepared dataset (latest version unless given) → (source
    dict split → random-access source, version)."""
    have = versions(data_dir, tfds_name)
    if not have:
        raise DataError(
            f"{Path(data_dir) / tfds_name}: dataset not found (no prepared "
            "version with dataset_info.json)"
        )
    version = version or have[-1]
    if version not in have:
        raise DataError(
            f"{Path(data_dir) / tfds_name}: version {version} not found; "
            f"available: {', '.join(have)}"
        )
    try:
        return tfds.data_source(
            f"{tfds_name}:{version}", data_dir=str(data_dir), try_gcs=False
        ), version
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{Path(data_dir) / tfds_name / version}: cannot open dataset ({e})") from e
