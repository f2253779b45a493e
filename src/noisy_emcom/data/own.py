"""Your own data (docs/data.md#your-own-data): a feature table or a folder of images → arrays
per split, the dataset's spec and a provenance record (source, content hash, encoder).

Tables: `.npy` [N, D] (split 75/25 here), `.npz` with `train`/`valid`/`test` (or
`<split>_logit`) and optional `<split>_label`, `<split>_attributes` + `attribute_names`,
`<split>_image`, or flat `logit`, `label`, `attributes`, `image` arrays (split here), or
Parquet: optional `split` and `label` columns, `attr_<name>` 0/1 columns, every other column a
feature. Images: one sub-folder per class, or a CSV file list (`path`, optional `label`,
`split`, other columns 0/1 attributes). A column named almost like one of these is refused
(`_check_typos`), not read as a feature or attribute. Nothing is unpickled or executed.
"""

from __future__ import annotations

import csv
import difflib
import functools
import hashlib
import json
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from noisy_emcom.data import files, loader
from noisy_emcom.data.errors import DataError

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
TFDS_PREFIX = "own_"
VERSION = "1.0.0"
PROVENANCE = "provenance.json"
SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IMAGE_SIZE = 64
FIELDS = ("logit", "label", "attributes", "image")
MAX_LABEL = 2**20  # labels are class indices below this (docs/data.md#your-own-data)
DTYPE_WORDS = {"b": "booleans", "f": "floats", "U": "strings", "S": "byte strings", "O": "objects"}


def tfds_name(name: str) -> str:
    """TFDS folder of a user dataset (prefixed: never a registered TFDS builder's name)."""
    return TFDS_PREFIX + name


TABLE_SUFFIXES = (".npy", ".npz", ".parquet")


def source_of(entry: Mapping) -> tuple[str, str]:
    """("table" | "images", path) of a config entry: `table`, `images`, or `source` (a table
    file by its suffix, else an image folder)."""
    for kind in ("table", "images"):
        if entry.get(kind):
            return kind, str(entry[kind])
    path = str(entry.get("source", ""))
    return ("table" if path.endswith(TABLE_SUFFIXES) else "images"), path


def table_bytes(entry: Mapping) -> int:
    """Bytes a job holds for a user dataset's feature table (for Snakemake's mem_mb): a table
    file's size, or 2048 float32 features per image of a folder."""
    kind, path = source_of(entry)
    if kind == "table":
        return Path(path).stat().st_size if Path(path).is_file() else 0
    return len(image_files(path)) * 4 * 2048


@functools.lru_cache(maxsize=64)
def image_files(folder: str) -> tuple[str, ...]:
    """Every image file below `folder`, sorted (listed once per process)."""
    return tuple(
        sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    )


def check_name(name: str, reserved) -> None:
    """A user dataset name: lowercase [a-z0-9_], starting with a letter, not `reserved`
    (`registry.RESERVED_NAMES`: the built-in datasets and the presets' `debug`)."""
    if not re.match(NAME_PATTERN, str(name)):
        raise DataError(
            f"dataset name {name!r}: use lowercase letters, digits and '_' (starting with a "
            "letter); '-' separates the parts of a run id"
        )
    if name in reserved:
        raise DataError(
            f"dataset name {name!r} is reserved (a built-in dataset, or the presets' synthetic "
            "table 'debug'); choose another name"
        )


# --------------------------------------------------------------------------------------------
# Fields (cheap: headers only, for the DAG)
# --------------------------------------------------------------------------------------------


def table_fields(path: str | Path) -> tuple[str, ...]:
    """Fields a table offers, read from its headers/schema (no data loaded)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: a folder, not a table file (images are given as `images`)")
    if not path.is_file():
        raise _not_found(path, "table file")
    if path.suffix == ".npy":
        return ("logit", "image_id")
    if path.suffix == ".npz":
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path}: not a valid .npz file (not a zip archive)")
        with zipfile.ZipFile(path) as z:
            keys = {n.removesuffix(".npy") for n in z.namelist()}
        have = set().union(*_npz_layout(path, keys).values())
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path}: cannot read the Parquet schema ({e})") from e
        attrs = _parquet_columns(path, schema)[1]
        have = {"label"} & set(schema.names) | ({"attributes"} if attrs else set())
    else:
        raise DataError(f"{path}: a table is a .npy, .npz or .parquet file")
    return ("logit", "image_id") + tuple(f for f in ("label", "attributes", "image") if f in have)


def _npz_layout(path: Path, keys) -> dict[str, dict[str, str]]:
    """{split: {field: array name}} of a .npz ('' = one flat table, split here). Refused: a
    name that is no field, flat arrays mixed with per-split ones, a field without its split's
    features, splits with different fields, attributes without attribute_names (or back)."""
    layout: dict[str, dict[str, str]] = {}
    for key in sorted(set(keys) - {"attribute_names"}):
        split, _, field = key.partition("_")
        if key in FIELDS:
            split, field = "", key
        elif key in SPLITS:
            field = "logit"
        elif not (split in SPLITS and field in FIELDS):
            raise DataError(
                f"{path}: array {key!r} is not a table field; a .npz holds 'train', 'valid', "
                "'test' (or '<split>_logit') with '<split>_label', '<split>_attributes', "
                "'<split>_image', or flat 'logit', 'label', 'attributes', 'image', and "
                "'attribute_names'"
            )
        if field in layout.setdefault(split, {}):
            raise DataError(f"{path}: arrays {layout[split][field]!r} and {key!r} are one field")
        layout[split][field] = key
    if "" in layout and len(layout) > 1:
        per_split = sorted(k for s in layout if s for k in layout[s].values())
        raise DataError(
            f"{path}: flat arrays {sorted(layout[''].values())} mixed with per-split arrays "
            f"{per_split}; use one layout"
        )
    for split, fields in layout.items():
        if "logit" not in fields:
            raise DataError(
                f"{path}: array {next(iter(fields.values()))!r} has no features for its split; "
                + (f"give {split!r} or '{split}_logit'" if split else "give 'logit'")
            )
    if not layout:
        raise DataError(
            f"{path}: no feature array; give 'train' and 'test' (or '<split>_logit') "
            f"or a flat 'logit' array; found {sorted(keys)}"
        )
    if "" not in layout and not {"train", "test"} <= set(layout):
        raise DataError(f"{path}: needs a 'train' and a 'test' split; found {sorted(layout)}")
    fields = [sorted(f) for f in layout.values()]
    if any(f != fields[0] for f in fields):
        raise DataError(f"{path}: splits hold different fields {fields}")
    if ("attribute_names" in keys) != ("attributes" in fields[0]):
        raise DataError(
            f"{path}: array 'attribute_names' without attributes arrays"
            if "attribute_names" in keys
            else f"{path}: attributes arrays without an array 'attribute_names'"
        )
    return {s: layout[s] for s in ("", *SPLITS) if s in layout}


def _not_found(path: Path, what: str) -> DataError:
    """`what` not found at `path`, with the absolute path looked at when `path` is relative."""
    where = "" if path.is_absolute() else f" (looked for {path.absolute()})"
    return DataError(f"{path}: {what} not found{where}")


def _check_typos(where: str, names, exact: tuple[str, ...], attr_prefix: bool = False) -> None:
    """Refuse a column named almost like one with a meaning (docs/data.md#your-own-data), which
    would else be taken silently as a feature or an attribute: its lowercased name close to
    one of `exact` (difflib ratio >= 0.8: `Label`, `lable`, `labels`, `Split`), or, with
    `attr_prefix`, a name starting like `attr_` (`attr` in any case, or a first part up to
    '_' or '-' close to `attr_`: `Attr_x`, `attr-x`, `atr_x`) that is not `attr_<name>`."""
    for name in names:
        low = name.lower()
        close = difflib.get_close_matches(low, exact, n=1, cutoff=0.8)
        if close and name != close[0]:
            raise DataError(
                f"{where}: column {name!r}: did you mean {close[0]!r}? (a name this close is "
                "refused, not read as a feature or attribute: rename the column)"
            )
        head = re.match(r"[^_-]*[_-]?", low)[0]
        near = low.startswith("attr") or difflib.get_close_matches(head, ["attr_"], 1, 0.85)
        if attr_prefix and near and not name.startswith("attr_"):
            rest = name[len(head) :] if head[-1:] in "_-" else name  # Attractive: attr_Attractive
            raise DataError(
                f"{where}: column {name!r} looks like an attribute: did you mean "
                f"'attr_{rest}'? (attribute columns are named 'attr_<name>'; a feature may "
                "not start like that)"
            )


def _parquet_columns(path: Path, schema) -> tuple[list[str], list[str]]:
    """(feature, attribute) columns of a Parquet schema; refused: names that are empty,
    padded, given twice or close to `label`, `split`, `attr_` (`_check_typos`), a non-numeric
    feature column or no feature column, a non-integer `label` column."""
    import pyarrow as pa

    index = [c for c in (schema.pandas_metadata or {}).get("index_columns", []) if type(c) is str]
    names = _check_names(f"{path}: columns", [c for c in schema.names if c not in index])
    _check_typos(path, names, ("label", "split"), attr_prefix=True)
    attrs = [c for c in names if c.startswith("attr_")]
    _check_names(f"{path}: 'attr_' columns", [c.removeprefix("attr_") for c in attrs])
    feats = [c for c in names if c not in ("split", "label", *attrs)]
    for c in feats:
        t = schema.field(c).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            raise DataError(f"{path}: column {c!r} holds {_words(t)}; feature columns are numeric")
    if not feats:
        raise DataError(f"{path}: no feature column (columns: {names})")
    if "label" in names and not pa.types.is_integer(schema.field("label").type):
        raise DataError(
            f"{path}: column 'label' holds {_words(schema.field('label').type)}; labels are "
            f"integers in 0..{MAX_LABEL - 1} (class indices)"
        )
    return feats, attrs


def _words(t) -> str:
    """An Arrow type in words: `strings (large_string)`, `floats (double)`."""
    import pyarrow as pa

    kinds = {"floats": pa.types.is_floating, "booleans": pa.types.is_boolean}
    kinds["strings"] = lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
    return next((f"{k} ({t})" for k, test in kinds.items() if test(t)), f"{t} values")


def _check_names(where: str, names: list[str]) -> list[str]:
    """Names (attributes, CSV columns): none empty or padded with spaces, none twice."""
    for i, name in enumerate(names):
        if not name or name != name.strip():
            raise DataError(f"{where}: name {name!r} is empty or padded with spaces")
        if name in names[:i]:
            raise DataError(f"{where}: name {name!r} appears twice")
    return names


def image_fields(folder: str | Path, file_list: str | Path | None = None) -> tuple[str, ...]:
    """Fields an image folder offers: logit, image, label (class folders or a `label` column),
    attributes (other columns of the file list)."""
    folder = Path(folder)
    if not folder.is_dir():
        if folder.suffix or folder.is_file():  # e.g. `source: table.parquett`
            raise DataError(
                f"{folder}: not a table ({', '.join(TABLE_SUFFIXES)}) and no image folder there"
            )
        raise _not_found(folder, "image folder")
    if file_list:
        header = _read_list(Path(file_list), folder)[0]
        have = {"label"} & set(header)
        have |= {"attributes"} if _attr_columns(header) else set()
    else:
        have = {"label"}
    return (
        ("logit", "image_id") + tuple(f for f in ("label", "attributes") if f in have) + ("image",)
    )


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def split_rows(n: int, labels: np.ndarray | None, test_fraction: float, seed: int) -> dict:
    """{train, test: row indices}: a seeded split, stratified by label when there are labels
    (each class keeps round(test_fraction·n_c) test rows, at least one train row)."""
    rng = np.random.default_rng(seed)
    groups = (
        [np.arange(n)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    )
    train, test = [], []
    for rows in groups:
        rows = rng.permutation(rows)
        k = min(int(round(test_fraction * len(rows))), len(rows) - 1)
        test.append(rows[:k])
        train.append(rows[k:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


def _take(arrays: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in arrays.items()}


def _split_flat(arrays: dict, test_fraction: float, seed: int) -> dict[str, dict]:
    parts = split_rows(len(arrays["logit"]), arrays.get("label"), test_fraction, seed)
    return {s: _take(arrays, rows) for s, rows in parts.items()}


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def read_table(path: str | Path, test_fraction: float = 0.25, seed: int = 0):
    """A feature table → ({split: {field: array}}, attribute names)."""
    path = Path(path)
    table_fields(path)  # existence and format
    names: list[str] = []
    if path.suffix == ".npy":
        try:
            flat = {"logit": np.load(path, allow_pickle=False)}
        except ValueError as e:
            raise DataError(f"{path}: holds pickled (object) data, which is not read") from e
        splits = _split_flat(_checked(path, flat, names), test_fraction, seed)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            layout = _npz_layout(path, data.files)
            if "attribute_names" in data.files:
                names = _attribute_names(path, loader._member(path, data, "attribute_names"))
            arrays = {
                s: {f: loader._member(path, data, k) for f, k in layout[s].items()} for s in layout
            }
        splits = {s: _checked(path, arrays[s], names, layout[s]) for s in layout}
        if "" in splits:
            splits = _split_flat(splits[""], test_fraction, seed)
    else:
        splits, names = _read_parquet(path, test_fraction, seed)
    if "train" not in splits or "test" not in splits:
        raise DataError(f"{path}: needs a 'train' and a 'test' split; found {sorted(splits)}")
    widths = {s: a["logit"].shape[1] for s, a in splits.items()}
    if len(set(widths.values())) > 1:
        raise DataError(f"{path}: splits have features of different widths {widths}")
    return splits, names


def _attribute_names(path: Path, names: np.ndarray) -> list[str]:
    where = f"{path}: array 'attribute_names'"
    if names.ndim != 1 or names.dtype.kind != "U":
        raise DataError(f"{where} must be a 1-D array of strings, got {names.dtype} {names.shape}")
    return _check_names(where, [str(x) for x in names])


def _read_parquet(path: Path, test_fraction: float, seed: int):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    feats, attrs = _parquet_columns(path, table.schema)
    for c in ("label", "split", *attrs):  # NaN features are refused as such by _checked
        if c in table.column_names and table.column(c).null_count:
            row = int(np.argmax(table.column(c).is_null().to_numpy(zero_copy_only=False)))
            raise DataError(f"{path}: column {c!r} is empty in row {row}")
    df = table.to_pandas()
    flat = {"logit": df[feats].to_numpy()}
    if "label" in df:
        flat["label"] = df["label"].to_numpy()
    names = [c.removeprefix("attr_") for c in attrs]
    if attrs:
        flat["attributes"] = df[attrs].to_numpy()
    flat = _checked(path, flat, names)
    if "split" not in df:
        return _split_flat(flat, test_fraction, seed), names
    col = df["split"].astype(str).to_numpy()
    unknown = sorted(set(col) - set(SPLITS))
    if unknown:
        raise DataError(f"{path}: column 'split' has {unknown[0]!r}; use train, valid or test")
    return {s: _take(flat, np.flatnonzero(col == s)) for s in SPLITS if (col == s).any()}, names


def _checked(path: Path, arrays: dict, names: list[str], keys: Mapping | None = None) -> dict:
    """Types and shapes of one table's arrays; errors name the file and the array (`keys`:
    field → .npz array name) or the Parquet column, and the row of a bad value."""

    def what(field: str) -> str:
        return f"array {keys[field]!r}" if keys else f"column {field!r}"

    x = arrays["logit"]
    if x.ndim != 2 or x.shape[1] == 0:
        x_what = what("logit") if keys else "the table"
        raise DataError(f"{path}: {x_what} has shape {x.shape}; need [N, D] features")
    x = loader._check_table(path, what("logit") if keys else "the table", x)
    out = {"logit": x}
    n = len(x)
    if "label" in arrays:
        y = arrays["label"]
        if y.shape != (n,) or y.dtype.kind not in "iu":
            kind = DTYPE_WORDS.get(y.dtype.kind, "values")
            raise DataError(
                f"{path}: {what('label')} must be [N] = [{n}] integers, got {kind} "
                f"({y.dtype}) of shape {y.shape}"
            )
        bad = (y < 0) | (y >= MAX_LABEL)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{path}: {what('label')} has {y[row]} in row {row}; labels are class indices "
                f"in 0..{MAX_LABEL - 1}"
            )
        out["label"] = y.astype(np.int64)
    if "attributes" in arrays:
        a = arrays["attributes"]
        if a.ndim != 2 or len(a) != n:
            raise DataError(f"{path}: {what('attributes')} must be [N, A], got {a.shape}")
        if len(names) != a.shape[1]:
            raise DataError(
                f"{path}: {what('attributes')} has {a.shape[1]} columns but {len(names)} "
                "attribute_names"
            )
        bad = np.argwhere(~np.isin(a, (0, 1)))
        if len(bad):
            row, col = bad[0]
            name = names[col]
            at = (
                f"{what('attributes')} column {col} ({name!r})" if keys else f"column 'attr_{name}'"
            )
            raise DataError(f"{path}: {at} has {a[row, col].item()!r} in row {row}; use 0 or 1")
        out["attributes"] = a.astype(bool)
    if "image" in arrays:
        im = arrays["image"]
        if im.ndim != 4 or len(im) != n or im.shape[-1] != 3 or im.dtype != np.uint8:
            raise DataError(f"{path}: {what('image')} must be [N, H, W, 3] uint8, got {im.shape}")
        out["image"] = resize_all(im)
    return out


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def resize_all(images: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] → [N,64,64,3] (bicubic; unchanged when already 64×64)."""
    if images.shape[1:3] == (IMAGE_SIZE, IMAGE_SIZE):
        return images
    return np.stack([thumbnail(im) for im in images]) if len(images) else images[:, :64, :64]


def thumbnail(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(image).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(im, np.uint8)


def _read_list(path: Path, folder: Path) -> tuple[list[str], list[dict]]:
    """A CSV file list of images in `folder` → (header, rows {column: value}, label and
    attributes as int); every row is checked (all cells, each image once and existing, a
    known split), errors name the line."""
    if not path.is_file():
        raise _not_found(path, "file list")
    try:
        return _parse_list(path, folder)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err}); save the file list as UTF-8") from None


def _parse_list(path: Path, folder: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte-order mark
        reader = csv.reader(f)
        header = _check_names(f"{path}: header", next(reader, []))
        _check_typos(f"{path}: header", header, ("path", "label", "split"))
        if "path" not in header:
            raise DataError(f"{path}: the file list needs a 'path' column; columns: {header}")
        ints = {c: 2 for c in _attr_columns(header)}  # 0/1 attributes
        ints.update({"label": MAX_LABEL} if "label" in header else {})
        rows, seen = [], {}
        known: dict[str, dict[str, int]] = {c: {} for c in ints}  # checked cell texts
        for cells in reader:
            at = f"{path} line {reader.line_num}"
            if not cells:
                continue
            if len(cells) != len(header):
                raise DataError(f"{at}: {len(cells)} cells; the header has {len(header)} columns")
            row = dict(zip(header, cells, strict=True))
            if not row["path"]:
                raise DataError(f"{at}, column 'path': empty")
            key = os.path.normpath(row["path"])
            if key in seen:
                raise DataError(
                    f"{at}, column 'path': {row['path']!r} is also on line {seen[key]} "
                    "(each image once: a test image must not be trained on)"
                )
            seen[key] = reader.line_num
            if not (folder / row["path"]).is_file():
                raise DataError(
                    f"{at}, column 'path': no file {folder / row['path']} (paths are relative "
                    "to the image folder)"
                )
            if "split" in row and row["split"] not in SPLITS:
                raise DataError(f"{at}, column 'split': {row['split']!r}; use train, valid or test")
            for col, stop in ints.items():
                text = row[col]
                if text not in known[col]:
                    known[col][text] = _int_cell(at, col, text, stop)
                row[col] = known[col][text]
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows below the header")
    return header, rows


def _int_cell(at: str, column: str, text: str, stop: int) -> int:
    """An integer cell in 0..stop-1 (plain digits); errors name the line and column."""
    if not re.fullmatch(r"[0-9]{1,9}", text.strip()) or int(text) >= stop:
        raise DataError(f"{at}, column {column!r}: {text!r} is not an integer in 0..{stop - 1}")
    return int(text)


def _attr_columns(header: list[str]) -> list[str]:
    return [c for c in header if c not in ("path", "label", "split")]


def list_images(folder: str | Path, file_list: str | Path | None = None):
    """(paths, labels or None, attributes [N,A] bool or None, attribute names, class names,
    splits [N] str or None) of an image folder, in a fixed order."""
    folder = Path(folder)
    if file_list:
        header, rows = _read_list(Path(file_list), folder)
        paths = [folder / r["path"] for r in rows]
        cols = _attr_columns(header)
        labels = np.array([r["label"] for r in rows]) if "label" in header else None
        attrs = np.array([[r[c] for c in cols] for r in rows], bool) if cols else None
        splits = np.array([r["split"] for r in rows]) if "split" in header else None
        classes = [str(c) for c in range(int(labels.max()) + 1)] if labels is not None else []
        return paths, labels, attrs, cols, classes, splits
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if len(classes) < 2:
        raise DataError(f"{folder}: needs one sub-folder per class (at least 2) or a file_list")
    paths, labels = [], []
    for i, c in enumerate(classes):
        files = sorted(p for p in (folder / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{folder / c}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        paths += files
        labels += [i] * len(files)
    return paths, np.array(labels), None, [], classes, None


def files_sha256(paths) -> str:
    """SHA-256 over the files' names and bytes, in order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode() + b"\0" + hashlib.sha256(Path(p).read_bytes()).digest())
    return h.hexdigest()


def arrays_sha256(splits: Mapping[str, Mapping[str, np.ndarray]]) -> str:
    """SHA-256 of every split's feature table (what a model trains on)."""
    h = hashlib.sha256()
    for s in sorted(splits):
        x = np.ascontiguousarray(splits[s]["logit"], np.float32)
        h.update(f"{s}:{x.shape}".encode() + x.tobytes())
    return h.hexdigest()


def write_provenance(out_dir: str | Path, record: Mapping) -> Path:
    return files.save_json(Path(out_dir) / PROVENANCE, record)


def read_provenance(data_dir: str | Path, name: str) -> dict | None:
    """The provenance record of a built user dataset, or None when there is none."""
    path = Path(data_dir) / tfds_name(name) / VERSION / PROVENANCE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise DataError(f"{path}: unreadable provenance record ({e})") from e


# --------------------------------------------------------------------------------------------
# Building the TFDS dataset
# --------------------------------------------------------------------------------------------


def encode_images(
    images: np.ndarray,
    paths,
    labels: np.ndarray | None,
    train_rows: np.ndarray,
    checkpoint: str | Path | None,
    encoder: Mapping,
) -> tuple[np.ndarray, dict]:
    """Features of the images → (features [N, D], encoder record): the BYOL ResNet-50 when a
    checkpoint is given (from the original files), else the project's small CNN trained on the
    training split's labels (64×64 thumbnails)."""
    from noisy_emcom import encoders

    if checkpoint:
        from noisy_emcom.data.extract import extract_features

        params, state = encoders.load_byol_resnet50(checkpoint)
        feats = extract_features(list(paths), params, state, desc="byol")
        return feats, {
            "encoder": "byol_resnet50",
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": files_sha256([checkpoint]),
        }
    if labels is None:
        raise DataError(
            "an image folder without labels needs a BYOL checkpoint (the small encoder is "
            "trained on the labels)"
        )
    cfg = {"width": 64, "steps": 300, "batch_size": 64, "learning_rate": 1e-3, "seed": 0}
    cfg.update(encoder or {})
    batch = min(cfg["batch_size"], len(train_rows))
    params, losses = encoders.train_shapes_cnn(
        images[train_rows],
        labels[train_rows],
        width=cfg["width"],
        steps=cfg["steps"],
        batch_size=batch,
        learning_rate=cfg["learning_rate"],
        seed=cfg["seed"],
        num_classes=int(labels.max()) + 1,
    )
    feats, preds = encoders.apply_shapes_cnn(params, images)
    held = np.setdiff1d(np.arange(len(images)), train_rows)
    return feats, {
        "encoder": "shapes_cnn",
        **{f"encoder_{k}": v for k, v in cfg.items()},
        "encoder_final_loss": float(losses[-1]) if len(losses) else None,
        "encoder_train_accuracy": float((preds[train_rows] == labels[train_rows]).mean()),
        "encoder_test_accuracy": float((preds[held] == labels[held]).mean()) if len(held) else None,
    }


def read_images(
    folder: str | Path,
    file_list: str | Path | None,
    checkpoint: str | Path | None,
    encoder: Mapping | None,
    test_fraction: float,
    seed: int,
):
    """An image folder → ({split: arrays}, attribute names, class names, source record)."""
    paths, labels, attrs, names, classes, split_col = list_images(folder, file_list)
    if not paths:
        raise DataError(f"{folder}: no images")
    from noisy_emcom.data.raw import decode_rgb

    images = np.stack([thumbnail(decode_rgb(p)) for p in paths])
    n = len(paths)
    if split_col is not None:
        parts = {s: np.flatnonzero(split_col == s) for s in SPLITS if (split_col == s).any()}
    else:
        parts = split_rows(n, labels, test_fraction, seed)
    if "train" not in parts or "test" not in parts:
        raise DataError(f"{folder}: needs train and test images; splits {sorted(parts)}")
    feats, record = encode_images(images, paths, labels, parts["train"], checkpoint, encoder)
    flat = {"logit": feats, "image": images, "image_id": np.arange(n)}
    if labels is not None:
        flat["label"] = labels.astype(np.int64)
    if attrs is not None:
        flat["attributes"] = attrs
    srcs = [folder, file_list] if file_list else [folder]
    record.update(
        source=[str(Path(s).resolve()) for s in srcs],
        source_sha256=files_sha256(paths + ([Path(file_list)] if file_list else [])),
        num_images=n,
    )
    return {s: _take(flat, rows) for s, rows in parts.items()}, names, classes, record


def build(
    name: str,
    data_dir: str | Path,
    *,
    table: str | Path | None = None,
    images: str | Path | None = None,
    file_list: str | Path | None = None,
    checkpoint: str | Path | None = None,
    encoder: Mapping | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write user dataset `name` as `<data_dir>/own_<name>/1.0.0/` (TFDS array_record) with
    `provenance.json` beside its dataset_info.json → the dataset folder."""
    from noisy_emcom.data import registry, tfds_io

    if (table is None) == (images is None):
        raise DataError(f"dataset {name!r}: give either a table or an image folder")
    if not 0 < test_fraction < 1:
        raise DataError(f"dataset {name!r}: test_fraction must be in (0, 1), got {test_fraction}")
    classes: list[str] = []
    if table is not None:
        splits, names = read_table(table, test_fraction, seed)
        record = {
            "kind": "table",
            "source": [str(Path(table).resolve())],
            "source_sha256": files_sha256([table]),
        }
        for arrays in splits.values():
            arrays.setdefault("image_id", np.arange(len(arrays["logit"])))
    else:
        splits, names, classes, record = read_images(
            images, file_list, checkpoint, encoder, test_fraction, seed
        )
        record["kind"] = "images"
    empty = [s for s, a in splits.items() if len(a["logit"]) == 0]
    if empty:
        raise DataError(f"dataset {name!r}: split {empty[0]!r} has no rows (too few examples)")
    fields = ("logit", "image_id") + tuple(
        f for f in ("label", "attributes", "image") if f in splits["train"]
    )
    labels = [a["label"] for a in splits.values() if "label" in a]
    depth = int(max(int(y.max()) for y in labels if len(y)) + 1) if labels else 0
    dim = int(splits["train"]["logit"].shape[1])
    spec = registry.user_spec(name, fields, dim, depth, names)
    desc = f"User dataset {name!r} ({record['kind']}: {', '.join(record['source'])})."
    out = tfds_io.write_dataset(
        spec, VERSION, data_dir, splits, feature_dim=dim, description=desc, overwrite=overwrite
    )
    write_provenance(
        out,
        {
            **record,
            "name": name,
            "fields": list(fields),
            "feature_dim": dim,
            "label_depth": depth,
            "class_names": classes,
            "attribute_names": list(names),
            "splits": {s: len(a["logit"]) for s, a in splits.items()},
            "features_sha256": arrays_sha256(splits),
            "test_fraction": test_fraction,
            "split_seed": seed,
        },
    )
    registry.register(spec)
    return out


# --------------------------------------------------------------------------------------------
# The scripts' --dataset argument
# --------------------------------------------------------------------------------------------


def is_file(dataset: str) -> bool:
    return str(dataset).endswith((".npz", ".npy"))


def file_label(path: str | Path) -> str:
    """The dataset name of a table file in run ids and result rows: its stem, lowercased, with
    other characters than [a-z0-9_] as '_' (`My-Table.npz` → `my_table`)."""
    from noisy_emcom.configs.common import DATASETS as PRESET_DATASETS
    from noisy_emcom.data.registry import DATASETS

    stem = re.sub(r"[^a-z0-9_]", "_", Path(path).stem.lower())
    builtin = stem in DATASETS or stem in PRESET_DATASETS  # e.g. debug.npy, imagenet.npz
    return stem if re.match(NAME_PATTERN, stem) and not builtin else f"t_{stem}"


def identity(dataset: str, data_dir) -> tuple[str, str, str]:
    """(name, file, sha256) of a `--dataset` value: a table file (its label, path and SHA-256)
    or a dataset name (a user dataset's features_sha256 from its provenance, else "")."""
    from noisy_emcom.data import registry

    if is_file(dataset):
        path = Path(dataset)
        if not path.is_file():
            raise DataError(f"{path}: dataset file not found")
        name = file_label(path)
        if name not in registry.DATASETS:
            registry.register(registry.user_spec(name, ("logit",)))
        return name, str(path), hashlib.sha256(path.read_bytes()).hexdigest()
    rec = (
        read_provenance(data_dir, dataset)
        if data_dir and dataset not in registry.DATASETS
        else None
    )
    return dataset, "", (rec or {}).get("features_sha256", "")


def train_config(spec: str, overrides: Mapping, dataset: str = "", data_dir: str = ""):
    """train.py's config: `--config=<preset>:<sweep>` and overrides, the sweep's dataset
    replaced by `--dataset` (a name or a table file), with the dataset's file and SHA-256."""
    from noisy_emcom import configs
    from noisy_emcom.data import registry

    registry.discover(data_dir)
    file, sha = "", ""
    if dataset:
        name, file, sha = identity(dataset, data_dir)
        spec = configs.with_dataset(spec, name)
    cfg = configs.from_spec(spec, dict(overrides))  # resolved and validated
    if not dataset and cfg.dataset.name not in registry.DATASETS:
        sha = identity(cfg.dataset.name, data_dir)[2]
    cfg.dataset.file, cfg.dataset.sha256 = file, sha
    return cfg
