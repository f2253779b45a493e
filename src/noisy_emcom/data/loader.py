"""Loading datasets into numpy (docs/data.md#loading; contract in docs/interfaces.md).

`dataset` is a sweep name (`shapes_logits`, `imagenet`, `celeba_noimg`, ..., optionally
`name:version`) read with `tfds.data_source` from `data_dir`, or a path to
- a `.npz` file with arrays `<split>` (the logit table) or `<split>_<field>`, or
- a `.npy` file: one logit table [N, D] used for every split.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.proto import tf_example_pb2

from noisy_emcom.data import shapes, tfds_io
from noisy_emcom.data.errors import DataError
from noisy_emcom.data.registry import (
    DATASETS,
    DatasetSpec,
    datasets_with,
    get_spec,
    require_fields,
)

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetSpec",
    "StreamingSource",
    "attribute_names",
    "attribute_one_hots",
    "check_dataset",
    "datasets_with",
    "get_spec",
    "label_depth",
    "load_split",
    "one_hot",
    "open_stream",
    "require_fields",
    "scale_images",
]

CHUNK = 4096


def _is_file_dataset(dataset: str) -> bool:
    return str(dataset).endswith((".npz", ".npy"))


def _parse_name(dataset: str) -> tuple[str, str | None]:
    name, _, version = str(dataset).partition(":")
    return name, version or None


def _feature_keys(field: str) -> list[str]:
    """Output keys produced by a field (`factors` expands to `factor_<name>`)."""
    if field == "factors":
        return [f"factor_{k}" for k in shapes.FACTOR_NAMES]
    return [field]


def _open(dataset: str, split: str, data_dir, fields: Sequence[str], feature_dim: int | None):
    """Open and validate a TFDS split → (spec, source)."""
    name, version = _parse_name(dataset)
    spec = require_fields(name, fields, data_dir)
    if data_dir is None:
        raise DataError(f"dataset {name!r}: data_dir is required for a TFDS dataset")
    sources, version = tfds_io.data_source(data_dir, spec.tfds_name, version)
    if split not in sources:
        raise DataError(
            f"dataset {name!r} ({spec.tfds_name}:{version}) has no split "
            f"{split!r}; splits: {', '.join(sources)}"
        )
    source = sources[split]
    features = source.dataset_info.features
    for field in fields:
        if field not in features:
            raise DataError(
                f"dataset {name!r} ({spec.tfds_name}:{version}): field {field!r} "
                f"missing from the stored features {sorted(features.keys())}"
            )
    _check_features(name, spec, features, feature_dim)
    return spec, source


def _check_features(name: str, spec: DatasetSpec, features, feature_dim: int | None) -> None:
    """Refuse stored features whose width or keys differ from the registry / config."""
    width = features["logit"].shape
    want = (
        feature_dim
        if feature_dim is not None
        else (spec.feature_dim if spec.family not in ("shapes", "own") else None)
    )
    if len(width) != 1 or (want is not None and width[0] != want):
        raise DataError(
            f"dataset {name!r}: field 'logit' has shape {tuple(width)}, expected "
            f"({want if want is not None else 'D'},)"
        )
    for field, names in (("attributes", spec.attribute_names), ("landmarks", spec.landmark_names)):
        if field in features and tuple(sorted(features[field].keys())) != tuple(sorted(names)):
            raise DataError(
                f"dataset {name!r}: field {field!r} has keys "
                f"{sorted(features[field].keys())[:3]}..., expected the "
                f"{len(names)} names of the registry"
            )


def _stack(spec: DatasetSpec, field: str, rows: list[dict]) -> dict[str, np.ndarray]:
    """Per-record dicts → arrays for one field (canonical order for nested dicts)."""
    if field == "attributes":
        return {
            field: np.array(
                [[r[field][n] for n in spec.attribute_names] for r in rows], bool
            ).reshape(len(rows), len(spec.attribute_names))
        }
    if field == "landmarks":
        return {
            field: np.array(
                [[r[field][n] for n in spec.landmark_names] for r in rows], np.int64
            ).reshape(len(rows), len(spec.landmark_names))
        }
    if field == "factors":
        return {
            f"factor_{k}": np.array([r[field][k] for r in rows], np.int64 if i < 4 else np.float32)
            for i, k in enumerate(shapes.FACTOR_NAMES)
        }
    if field == "file_name":
        return {
            field: np.array(
                [r[field].decode() if isinstance(r[field], bytes) else str(r[field]) for r in rows]
            )
        }
    if field in ("label", "image_id"):
        return {field: np.array([r[field] for r in rows], np.int64)}
    return {field: np.stack([np.asarray(r[field]) for r in rows])}


def _plain_tensor(feature) -> bool:
    """A `Tensor`/`Scalar` feature stored unencoded as an int64 or float list."""
    return type(feature) in (tfds.features.Tensor, tfds.features.Scalar) and (
        feature._encoding == tfds.features.Encoding.NONE  # noqa: SLF001 - no public accessor
    )


def _columns(spec: DatasetSpec, field: str, features) -> list[tuple] | None:
    """How to read a field straight from the serialized records: [(output key, dtype, shape,
    flat record keys)], or None when a feature is encoded (image bytes, text) and needs TFDS."""
    feature = features[field]
    if isinstance(feature, tfds.features.FeaturesDict):
        names = {
            "attributes": spec.attribute_names,
            "landmarks": spec.landmark_names,
            "factors": shapes.FACTOR_NAMES,
        }.get(field)
        if names is None or not all(_plain_tensor(feature[n]) for n in names):
            return None
        if field == "factors":
            return [
                (f"factor_{n}", "int64" if i < 4 else "float32", (), [f"factors/{n}"])
                for i, n in enumerate(names)
            ]
        dtype = "bool" if field == "attributes" else "int64"
        return [(field, dtype, (len(names),), [f"{field}/{n}" for n in names])]
    if not _plain_tensor(feature):
        return None
    return [(field, np.dtype(feature.np_dtype).name, tuple(feature.shape), [field])]


def _parse_columns(records: list[bytes], columns: list[tuple]) -> dict[str, np.ndarray]:
    """Serialized tf.train.Examples → arrays of the given columns (no per-feature decoding)."""
    out = {key: np.empty((len(records), *shape), dtype) for key, dtype, shape, _ in columns}
    for i, record in enumerate(records):
        fmap = tf_example_pb2.Example.FromString(record).features.feature
        for key, _, shape, flat in columns:
            if len(flat) == 1:  # one tensor (or scalar)
                f = fmap[flat[0]]
                out[key][i] = np.asarray(f.float_list.value or f.int64_list.value).reshape(shape)
            else:  # a dict of scalars
                out[key][i] = [
                    (fmap[n].int64_list.value or fmap[n].float_list.value)[0] for n in flat
                ]
    return out


def _read_rows(
    spec: DatasetSpec, source, indices: np.ndarray, fields: Sequence[str]
) -> dict[str, np.ndarray]:
    """Records `indices` of a TFDS source → arrays. Plain int/float features are parsed from
    the serialized records directly (about 10× faster than TFDS's per-feature decoding of
    these many-keyed records); encoded features go through TFDS."""
    features = source.dataset_info.features
    fast = {f: _columns(spec, f, features) for f in fields}
    slow = [f for f, cols in fast.items() if cols is None]
    out: dict[str, np.ndarray] = {}
    columns = [c for cols in fast.values() if cols for c in cols]
    try:
        records = source.data_source.__getitems__([int(i) for i in indices])  # read once
        empty = [int(i) for i, r in zip(indices, records, strict=True) if not r]
        if empty:  # what a truncated shard yields past its end
            raise ValueError(f"record {empty[0]} is empty")
        if columns:
            out.update(_parse_columns(records, columns))
        if slow:
            rows = [features.deserialize_example_np(r) for r in records]
            for field in slow:
                out.update(_stack(spec, field, rows))
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 (array_record, protobuf and shape errors)
        raise DataError(
            f"{_shard_names(source, indices)}: cannot read the records of split "
            f"{source.split!r} ({e}); the file is damaged (truncated?): rebuild the dataset"
        ) from e
    return {k: out[k] for f in fields for k in _feature_keys(f)}


def _shard_names(source, indices: np.ndarray) -> str:
    """The array_record file(s) holding records `indices` of a TFDS split source."""
    shards = source.dataset_info.splits[source.split].file_instructions
    ends = np.cumsum([f.take for f in shards])
    hit = sorted(set(np.searchsorted(ends, np.asarray(indices), side="right").tolist()))
    return ", ".join(shards[i].filename for i in hit if i < len(shards))


def _empty(spec: DatasetSpec, field: str, source) -> dict[str, np.ndarray]:
    """Zero-length arrays of a field (empty split)."""
    if field in ("logit", "image"):
        feat = source.dataset_info.features[field]
        return {field: np.zeros((0, *feat.shape), feat.np_dtype)}
    return _stack(spec, field, [])


def _member(path: Path, data, key: str) -> np.ndarray:
    """Array `key` of an open .npz; object arrays (pickled data) are refused by name."""
    try:
        return data[key]
    except ValueError as e:
        raise DataError(
            f"{path}: array {key!r} holds pickled (object) data, which is not read"
        ) from e
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: array {key!r} cannot be read ({e})") from e


def _load_npz(path: Path, split: str, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays `<split>` (logit) or `<split>_<field>` of a .npz file."""
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a valid .npz file (not a zip archive)")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read .npz file ({e})") from e
    out = {}
    with data:
        for field in fields:
            for key in _feature_keys(field):
                names = [f"{split}_{key}"] + ([split] if key == "logit" else [])
                hit = next((n for n in names if n in data.files), None)
                if hit is None:
                    raise DataError(
                        f"{path}: no array {' or '.join(repr(n) for n in names)} "
                        f"for field {field!r} of split {split!r}"
                    )
                out[key] = _member(path, data, hit)
                if key == "logit":
                    out[key] = _check_table(path, f"array {hit!r}", out[key])
    return out


def _load_npy(path: Path, fields: Sequence[str]) -> dict[str, np.ndarray]:
    extra = [f for f in fields if f != "logit"]
    if extra:
        raise DataError(
            f"{path}: a .npy file holds only a logit table; field {extra[0]!r} is not available"
        )
    with path.open("rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise DataError(f"{path}: not a valid .npy file (no NumPy header)")
    try:
        table = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: holds pickled (object) data, which is not read") from e
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read .npy file ({e})") from e
    return {"logit": _check_table(path, "the table", table)}


def _check_table(path: Path, name: str, table: np.ndarray) -> np.ndarray:
    """A feature table as float32: real numbers only (no complex, bool, strings or objects),
    finite after the conversion; errors name the file and the array."""
    if table.dtype.kind not in "iuf":
        raise DataError(
            f"{path}: {name} (field 'logit') has dtype {table.dtype}; a feature table holds "
            "real numbers (integer or float)"
        )
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused below
        out = table.astype(np.float32, copy=False)
    if table.ndim == 2 and not np.all(np.isfinite(out)):
        row = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise DataError(
            f"{path}: {name} (field 'logit') has NaN or infinite values (first in row {row})"
        )
    return out


def _check_file_arrays(
    path: Path, out: dict[str, np.ndarray], feature_dim: int | None
) -> dict[str, np.ndarray]:
    if "logit" in out:
        logit = out["logit"]
        if logit.dtype.kind not in "iuf":
            _check_table(path, "the table", logit)
        if logit.ndim != 2 or (feature_dim is not None and logit.shape[1] != feature_dim):
            raise DataError(
                f"{path}: field 'logit' has shape {logit.shape}, expected "
                f"(N, {feature_dim if feature_dim is not None else 'D'})"
            )
        if logit.shape[1] == 0:
            raise DataError(f"{path}: field 'logit' has shape {logit.shape}: no features")
        out["logit"] = logit.astype(np.float32, copy=False)
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{path}: arrays have different lengths {lengths}")
    return out


def load_split(
    dataset: str,
    split: str,
    data_dir: str | Path | None,
    fields: Sequence[str] = ("logit",),
    *,
    feature_dim: int | None = None,
    chunk: int = CHUNK,
) -> dict[str, np.ndarray]:
    """Load whole fields of one split into numpy.

    Returns `logit` [N,D] float32, `label` [N] int64, `image_id` [N] int64, `attributes`
    [N,40] bool (canonical order, `attribute_names`), `landmarks` [N,10] int64, `image`
    [N,64,64,3] uint8, `factors` → `factor_<name>` [N], `file_name` [N] str, as asked.
    A dataset lacking a field or with another `logit` width than `feature_dim` is refused
    with a DataError naming the dataset and the field. Records are read in chunks of `chunk`.
    """
    fields = tuple(fields)
    if _is_file_dataset(dataset):
        path = Path(dataset)
        if not path.is_file():
            raise DataError(f"{path}: dataset file not found")
        out = _load_npz(path, split, fields) if path.suffix == ".npz" else _load_npy(path, fields)
        out = _check_file_arrays(path, out, feature_dim)
        if "logit" in out and len(out["logit"]) == 0:
            raise DataError(f"{path}: field 'logit' of split {split!r} has no rows")
        return out
    spec, source = _open(dataset, split, data_dir, fields, feature_dim)
    n = len(source)
    if n == 0:
        out = {}
        for field in fields:
            out.update(_empty(spec, field, source))
        return out
    parts = [
        _read_rows(spec, source, np.arange(a, min(a + chunk, n)), fields)
        for a in range(0, n, chunk)
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def check_dataset(
    dataset: str,
    data_dir: str | Path | None,
    fields: Sequence[str] = ("logit",),
    splits: Sequence[str] = ("train", "test"),
    feature_dim: int | None = None,
) -> dict[str, int]:
    """Validate that a dataset has the splits, fields and width a config needs, without
    loading it → {split: num_examples}. Errors name the dataset and the field."""
    if _is_file_dataset(dataset):
        return {
            s: len(load_split(dataset, s, data_dir, ("logit",), feature_dim=feature_dim)["logit"])
            for s in splits
        }
    return {s: len(_open(dataset, s, data_dir, tuple(fields), feature_dim)[1]) for s in splits}


def attribute_names(dataset: str, data_dir: str | Path | None = None) -> list[str]:
    """The 40 attribute names in the canonical column order of `attributes`.

    For a `.npz` file: its `attribute_names` array."""
    if _is_file_dataset(dataset):
        path = Path(dataset)
        if path.suffix == ".npz" and path.is_file():
            with np.load(path, allow_pickle=False) as data:
                if "attribute_names" in data.files:
                    return [str(x) for x in data["attribute_names"]]
        raise DataError(f"{path}: no 'attribute_names' array (field 'attributes')")
    name, _ = _parse_name(dataset)
    spec = require_fields(name, ("attributes",), data_dir)
    return list(spec.attribute_names)


def label_depth(dataset: str, data_dir: str | Path | None = None) -> int:
    """One-hot depth of `label`: 1000 (ImageNet), 10178 (CelebA identity), 48 (shapes), the
    number of classes of a user dataset."""
    return get_spec(_parse_name(dataset)[0], data_dir).label_depth


# --------------------------------------------------------------------------------------------
# ETL helpers
# --------------------------------------------------------------------------------------------


def one_hot(labels: np.ndarray, depth: int) -> np.ndarray:
    """Integer labels [N] → one-hot [N, depth] float32; a label outside 0..depth−1 is an
    error."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= depth):
        raise DataError(f"label values {labels.min()}..{labels.max()} outside 0..{depth - 1}")
    return np.eye(depth, dtype=np.float32)[labels]


def attribute_one_hots(attributes: np.ndarray) -> np.ndarray:
    """Attributes [N, A] bool → one-hot [N, A, 2] float32 (index 1 = true)."""
    return np.eye(2, dtype=np.float32)[np.asarray(attributes).astype(np.int64)]


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 images → float32 in [−1, 1]: x/127.5 − 1."""
    return np.asarray(images, np.float32) / 127.5 - 1.0


# --------------------------------------------------------------------------------------------
# Streaming (random access) for tables larger than memory
# --------------------------------------------------------------------------------------------


class StreamingSource:
    """Random access to one field's rows without loading the table.

    `num_examples`, `feature_dim`, `gather(indices[B]) -> [B, D]` (rows in the given order).
    """

    def __init__(self, reader, num_examples: int, feature_dim: int):
        self._reader = reader
        self.num_examples, self.feature_dim = int(num_examples), int(feature_dim)

    def gather(self, indices) -> np.ndarray:
        idx = np.asarray(indices, np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_examples):
            raise IndexError(f"indices outside 0..{self.num_examples - 1}")
        return self._reader(idx)

    def __len__(self) -> int:
        return self.num_examples


def open_stream(
    dataset: str,
    split: str,
    data_dir: str | Path | None,
    field: str = "logit",
    *,
    feature_dim: int | None = None,
) -> StreamingSource:
    """A `StreamingSource` over `field` of a split (TFDS random access; `.npy` memory-mapped;
    `.npz` loads the one array)."""
    if _is_file_dataset(dataset):
        path = Path(dataset)
        if path.suffix == ".npy" and path.is_file():
            table = np.load(path, mmap_mode="r")
            _check_file_arrays(path, {"logit": table[:0].reshape(0, *table.shape[1:])}, feature_dim)
        else:
            table = load_split(dataset, split, data_dir, (field,), feature_dim=feature_dim)[field]
        return StreamingSource(
            lambda i: np.asarray(table[i]), len(table), int(np.prod(table.shape[1:]))
        )
    spec, source = _open(dataset, split, data_dir, (field,), feature_dim)
    shape = source.dataset_info.features[field].shape
    dim = int(np.prod(shape)) if shape else 1
    return StreamingSource(lambda i: _read_rows(spec, source, i, (field,))[field], len(source), dim)
