"""Conversion of the published TFRecord TFDS folders (docs/data.md) to this project's
array_record layout, version 1.0.0. Reading TFRecords needs TensorFlow (extra `[tf]`).

The published metadata is not trusted (one archive lacks `dataset_info.json`): splits come
from the shard file names `<name>-<split>.tfrecord-XXXXX-of-YYYYY`, and every record's
features are parsed from its `tf.train.Example`, checked and mapped onto the registry's keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from noisy_emcom.data import raw, tfds_io
from noisy_emcom.data.errors import DataError
from noisy_emcom.data.registry import DatasetSpec, get_spec

CONVERTED_VERSION = "1.0.0"
_SHARD = re.compile(r"^(?P<name>.+)-(?P<split>[a-z]+)\.tfrecord(-\d+-of-\d+)?$")


def require_tensorflow():
    """Import TensorFlow or stop with how to install it."""
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError as e:
        raise DataError(
            "converting the published TFRecord datasets needs TensorFlow, which is not "
            "installed; install the optional extra: pip install -e '.[tf]'"
        ) from e
    return tf


def shard_files(folder: str | Path) -> dict[str, list[Path]]:
    """TFRecord shards of a published TFDS version folder → {split: sorted paths}."""
    folder = raw.require_dir(folder, "published dataset")
    out: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        m = _SHARD.match(p.name)
        if m:
            out.setdefault(m.group("split"), []).append(p)
    if not out:
        raise DataError(f"{folder}: no TFRecord shards (<name>-<split>.tfrecord-*)")
    return out


def read_tfrecord_examples(paths: Iterable[Path]) -> Iterator[dict[str, np.ndarray]]:
    """Parse every `tf.train.Example` of TFRecord files → {feature key: 1-d numpy array}
    (bytes features as object arrays). Needs TensorFlow."""
    tf = require_tensorflow()
    for path in paths:
        try:
            for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                ex = tf.train.Example.FromString(record)
                yield {k: _feature_values(v) for k, v in ex.features.feature.items()}
        except tf.errors.OpError as e:
            raise DataError(f"{path}: cannot read TFRecord ({e.message})") from e


def _feature_values(feature) -> np.ndarray:
    kind = feature.WhichOneof("kind")
    if kind == "float_list":
        return np.array(feature.float_list.value, np.float32)
    if kind == "int64_list":
        return np.array(feature.int64_list.value, np.int64)
    if kind == "bytes_list":
        return np.array(list(feature.bytes_list.value), dtype=object)
    return np.zeros(0, np.float32)


def _decode_logit(values: np.ndarray) -> np.ndarray:
    """A `logit` feature: float list, or one serialized tensor (raw float32 bytes)."""
    if values.dtype == object:
        if len(values) != 1:
            raise DataError(f"logit has {len(values)} byte strings, expected 1")
        return np.frombuffer(values[0], np.float32)
    return values.astype(np.float32)


def records_to_arrays(
    spec: DatasetSpec, records: Iterable[dict[str, np.ndarray]], source: str, decode_image=None
) -> dict[str, np.ndarray]:
    """Flat per-record feature dicts (keys like `logit`, `label`, `image_id`,
    `attributes/<name>`, `landmarks/<name>`, `image`) → flat arrays of `spec`'s fields.

    Checks that every record has every key with the right number of values; `image` bytes
    are decoded with `decode_image(bytes) -> uint8 [64,64,3]` when given.
    """
    cols: dict[str, list] = {}
    for n, rec in enumerate(records):
        if "logit" not in rec:
            raise DataError(f"{source}: record {n} has no 'logit' feature")
        cols.setdefault("logit", []).append(_decode_logit(rec["logit"]))
        for key in ("label", "image_id"):
            if key in spec.fields:
                cols.setdefault(key, []).append(_scalar(rec, key, source, n))
        for field, names in (
            ("attributes", spec.attribute_names),
            ("landmarks", spec.landmark_names),
        ):
            if field in spec.fields:
                cols.setdefault(field, []).append(
                    [_scalar(rec, f"{field}/{k}", source, n) for k in names]
                )
        if "image" in spec.fields:
            if "image" not in rec:
                raise DataError(f"{source}: record {n} has no 'image' feature")
            value = rec["image"]
            if value.dtype == object:
                if decode_image is None:
                    raise DataError(f"{source}: encoded images need a decoder")
                img = decode_image(value[0])
            else:
                img = value.astype(np.uint8).reshape(64, 64, 3)
            cols.setdefault("image", []).append(img)
    if not cols:
        raise DataError(f"{source}: no records")
    widths = {len(x) for x in cols["logit"]}
    if len(widths) != 1:
        raise DataError(f"{source}: logit widths differ between records: {sorted(widths)}")
    out = {"logit": np.stack(cols["logit"])}
    for key in ("label", "image_id"):
        if key in cols:
            out[key] = np.array(cols[key], np.int64)
    if "attributes" in cols:
        out["attributes"] = np.array(cols["attributes"]) > 0
    if "landmarks" in cols:
        out["landmarks"] = np.array(cols["landmarks"], np.int64)
    if "image" in cols:
        out["image"] = np.stack(cols["image"]).astype(np.uint8)
    return out


def _scalar(rec: dict, key: str, source: str, n: int) -> int:
    if key not in rec:
        raise DataError(f"{source}: record {n} has no {key!r} feature")
    v = rec[key]
    if len(v) != 1 or v.dtype == object:
        raise DataError(f"{source}: record {n}: {key!r} is not one number")
    return int(v[0])


def _decode_png_jpeg(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        img = np.asarray(im.convert("RGB"))
    if img.shape != (64, 64, 3):
        img = raw.celeba_small_image(img)
    return img


def convert_published(
    folder: str | Path,
    sweep: str,
    data_dir: str | Path,
    *,
    version: str = CONVERTED_VERSION,
    overwrite: bool = False,
    read_records=read_tfrecord_examples,
) -> Path:
    """Convert one published variant folder (e.g. `byol_celeb_a2/1.0.0`) to
    `<data_dir>/<tfds_name>/<version>/` in array_record format → that path.

    Split sizes, dtypes and the logit width are taken from the records themselves and written
    into the new dataset_info.
    """
    spec = get_spec(sweep)
    splits = {}
    for split, paths in shard_files(folder).items():
        splits[split] = records_to_arrays(
            spec, read_records(paths), f"{folder} [{split}]", decode_image=_decode_png_jpeg
        )
    widths = {a["logit"].shape[1] for a in splits.values()}
    if len(widths) != 1:
        raise DataError(f"{folder}: logit widths differ between splits: {sorted(widths)}")
    return tfds_io.write_dataset(
        spec, version, data_dir, splits, feature_dim=widths.pop(), overwrite=overwrite
    )
