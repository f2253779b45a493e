"""Pipeline steps from raw data to TFDS datasets; the workflow scripts call these.

Files between steps (all written atomically):
- shapes raw split: `.npz` with the arrays of `shapes.generate` (image, label, image_id,
  attributes, landmarks, factor_*);
- shapes encoder: `.npz` of parameters (`module::name`) + a metrics `.json`;
- features: `.npz` with `logit` [N,D] and `image_id` [N] (shapes, CelebA), or for ImageNet
  `<split>_logit`, `<split>_label`, `<split>_file_name`;
- TFDS datasets: `<data_dir>/<tfds_name>/<version>/`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from noisy_emcom import encoders
from noisy_emcom.data import files, raw, shapes, tfds_io
from noisy_emcom.data.errors import DataError
from noisy_emcom.data.registry import family_variants, get_spec
from noisy_emcom.progress import Progress

REEXTRACTED = "2.0.0"
CONVERTED = "1.0.0"
SHAPES_KEYS = ("image", "label", "image_id", "attributes", "landmarks") + tuple(
    f"factor_{k}" for k in shapes.FACTOR_NAMES
)


def read_npz(path: str | Path, keys=None, what: str = "array file") -> dict[str, np.ndarray]:
    """All (or `keys`) arrays of a .npz; a DataError names a missing file or array."""
    path = raw.require_file(path, what)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (keys or ()) if k not in data.files]
            if missing:
                raise DataError(f"{path}: missing array {missing[0]!r}")
            return {k: data[k] for k in (keys or data.files)}
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read .npz file ({e})") from e


# --------------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------------


def make_shapes(split: str, num: int, seed: int, out: str | Path) -> Path:
    """Generate one raw `shapes` split (docs/data.md#shapes) → `.npz`."""
    if split not in shapes.SPLIT_INDEX:
        raise DataError(f"unknown shapes split {split!r}; expected train, valid or test")
    return files.save_npz(out, shapes.generate(num, split, seed))


def train_encoder(
    train_npz: str | Path,
    out_params: str | Path,
    out_metrics: str | Path,
    *,
    width: int = 512,
    steps: int = 600,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> dict:
    """Train the `shapes` CNN on the raw train split → params `.npz` + metrics `.json`
    (config, final loss, train accuracy)."""
    data = read_npz(train_npz, ("image", "label"), "shapes raw split")
    params, losses = encoders.train_shapes_cnn(
        data["image"],
        data["label"],
        width=width,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
    )
    metrics = {
        "width": width,
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "final_loss": float(losses[-10:].mean()) if len(losses) else None,
        "initial_loss": float(losses[0]) if len(losses) else None,
    }
    files.save_npz(out_params, encoders.params_to_arrays(params))
    files.save_json(out_metrics, metrics)
    return metrics


def load_encoder_params(path: str | Path) -> dict:
    """Encoder parameters from a `.npz` written by `train_encoder`."""
    return encoders.arrays_to_params(read_npz(path, what="encoder parameters"))


def encode_shapes(params_npz: str | Path, raw_npz: str | Path, out: str | Path) -> dict:
    """Features of one raw split → `.npz` (`logit` [N,D], `image_id` [N], `accuracy` []);
    returns {num_examples, accuracy}."""
    params = load_encoder_params(params_npz)
    data = read_npz(raw_npz, ("image", "label", "image_id"), "shapes raw split")
    feats, pred = encoders.apply_shapes_cnn(params, data["image"])
    acc = float((pred == data["label"]).mean()) if len(pred) else float("nan")
    files.save_npz(out, {"logit": feats, "image_id": data["image_id"], "accuracy": acc})
    return {"num_examples": int(len(feats)), "accuracy": acc}


def build_shapes(
    raw_npz: Mapping[str, str | Path],
    features_npz: Mapping[str, str | Path],
    data_dir: str | Path,
    *,
    version: str = REEXTRACTED,
    encoder_params: str | Path | None = None,
    encoder_metrics: str | Path | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write `shapes_logits`, `shapes_noimg`, `shapes` from raw splits and their features.

    The encoder parameters and `encoder_accuracy.json` (accuracy per split) are copied next
    to each dataset (`<data_dir>/<name>/<version>/encoder/`).
    """
    if set(raw_npz) != set(features_npz):
        raise DataError(
            f"raw splits {sorted(raw_npz)} and feature splits {sorted(features_npz)} differ"
        )
    splits, accuracy = {}, {}
    for split in raw_npz:
        arrays = read_npz(raw_npz[split], SHAPES_KEYS, "shapes raw split")
        feats = read_npz(features_npz[split], what="shapes features")
        for key in ("logit", "image_id"):
            if key not in feats:
                raise DataError(f"{features_npz[split]}: missing array {key!r}")
        if not np.array_equal(feats["image_id"], arrays["image_id"]):
            raise DataError(f"{features_npz[split]}: image_id does not match {raw_npz[split]}")
        arrays["logit"] = feats["logit"].astype(np.float32)
        splits[split] = arrays
        if "accuracy" in feats:
            accuracy[split] = float(feats["accuracy"])
    width = _width(splits)
    outs = []
    variants = family_variants("shapes")
    meter = Progress("shapes TFDS datasets", len(variants), "written", every_s=0.0)
    for spec in variants:
        out = tfds_io.write_dataset(
            spec, version, data_dir, splits, feature_dim=width, overwrite=overwrite
        )
        _write_encoder_files(out, encoder_params, encoder_metrics, accuracy)
        outs.append(out)
        meter.update(note=str(out))
    return outs


def _width(splits: Mapping[str, Mapping[str, np.ndarray]]) -> int:
    widths = {a["logit"].shape[1] for a in splits.values()}
    if len(widths) != 1:
        raise DataError(f"logit widths differ between splits: {sorted(widths)}")
    return widths.pop()


def _write_encoder_files(out: Path, params, metrics, accuracy: dict) -> None:
    enc = out / "encoder"
    info = {"accuracy": accuracy}
    if metrics is not None:
        info["training"] = json.loads(raw.require_file(metrics, "encoder metrics").read_text())
    files.save_json(enc / "encoder_accuracy.json", info)
    if params is not None:
        files.save_npz(enc / "encoder_params.npz", read_npz(params, what="encoder parameters"))


# --------------------------------------------------------------------------------------------
# BYOL extraction (CelebA, ImageNet)
# --------------------------------------------------------------------------------------------


def extract_celeba(
    root: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    *,
    batch_size: int = 64,
    image_size: int = 224,
    limit: int | None = None,
) -> int:
    """BYOL features of every annotated CelebA image (file order) → `.npz` with `logit`
    [N,2048] and `image_id` [N]. Returns N."""
    from noisy_emcom.data.extract import extract_features

    ann = raw.read_celeba_annotations(root)
    files_ = ann.files[:limit] if limit else ann.files
    paths = raw.celeba_image_paths(root, files_)
    params, state = encoders.load_byol_resnet50(checkpoint)
    feats = extract_features(
        paths, params, state, batch_size=batch_size, image_size=image_size, desc="celeba"
    )
    files.save_npz(out, {"logit": feats, "image_id": ann.image_id[: len(files_)]})
    return len(feats)


def extract_imagenet(
    root: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    *,
    batch_size: int = 64,
    image_size: int = 224,
) -> dict[str, int]:
    """BYOL features of an ImageNet folder tree → `.npz` with `<split>_logit`,
    `<split>_label`, `<split>_file_name` for splits train and test (= val)."""
    from noisy_emcom.data.extract import extract_features

    tree = raw.imagenet_files(root)
    params, state = encoders.load_byol_resnet50(checkpoint)
    arrays, sizes = {}, {}
    for split, (paths, labels) in tree.items():
        arrays[f"{split}_logit"] = extract_features(
            paths, params, state, batch_size=batch_size, image_size=image_size, desc=split
        )
        arrays[f"{split}_label"] = labels
        arrays[f"{split}_file_name"] = np.array([p.name for p in paths])
        sizes[split] = len(paths)
    files.save_npz(out, arrays)
    return sizes


def celeba_split_arrays(
    root: str | Path,
    features_npz: str | Path,
    *,
    split_rule: str = "custom",
    with_images: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Join CelebA annotations with extracted features by `image_id` and apply the split rule
    → {split: flat arrays} (images only when `with_images`)."""
    ann = raw.read_celeba_annotations(root)
    feats = read_npz(features_npz, ("logit", "image_id"), "CelebA features")
    pos = {int(i): n for n, i in enumerate(ann.image_id.tolist())}
    missing = [int(i) for i in feats["image_id"] if int(i) not in pos]
    if missing:
        raise DataError(f"{features_npz}: image_id {missing[0]} is not in the CelebA annotations")
    rows = np.array([pos[int(i)] for i in feats["image_id"]], np.int64)
    order = np.argsort(rows, kind="stable")
    rows, logit = rows[order], feats["logit"][order].astype(np.float32)
    split_of = raw.celeba_split(root, ann, split_rule)[rows]
    paths = raw.celeba_image_paths(root, [ann.files[r] for r in rows]) if with_images else None
    out = {}
    for split in ("train", "valid", "test"):
        sel = np.flatnonzero(split_of == split)
        arrays = {
            "logit": logit[sel],
            "image_id": ann.image_id[rows[sel]],
            "label": ann.identity[rows[sel]],
            "attributes": ann.attributes[rows[sel]],
            "landmarks": ann.landmarks[rows[sel]],
        }
        if with_images:
            imgs = [raw.celeba_small_image(raw.decode_rgb(paths[i])) for i in sel]
            arrays["image"] = np.stack(imgs) if imgs else np.zeros((0, 64, 64, 3), np.uint8)
        out[split] = arrays
    return out


def build_celeba(
    root: str | Path,
    features_npz: str | Path,
    data_dir: str | Path,
    *,
    version: str = REEXTRACTED,
    split_rule: str = "custom",
    variants=("celeba_logits", "celeba_noimg", "celeba"),
    overwrite: bool = False,
) -> list[Path]:
    """Write the CelebA variants from raw annotations/images and extracted features."""
    specs = [get_spec(v) for v in variants]
    if any(s.family != "celeba" for s in specs):
        raise DataError(f"not CelebA variants: {list(variants)}")
    splits = celeba_split_arrays(
        root,
        features_npz,
        split_rule=split_rule,
        with_images=any("image" in s.fields for s in specs),
    )
    width = _width(splits)
    return [
        tfds_io.write_dataset(s, version, data_dir, splits, feature_dim=width, overwrite=overwrite)
        for s in specs
    ]


def build_imagenet(
    features_npz: str | Path,
    data_dir: str | Path,
    *,
    version: str = REEXTRACTED,
    overwrite: bool = False,
) -> Path:
    """Write `byol_imagenet2012` from an extraction `.npz` (`<split>_logit`, `<split>_label`,
    optional `<split>_file_name`)."""
    spec = get_spec("imagenet")
    data = read_npz(features_npz, what="ImageNet features")
    splits = {}
    for split in spec.splits:
        keys = [f"{split}_logit", f"{split}_label"]
        for k in keys:
            if k not in data:
                raise DataError(f"{features_npz}: missing array {k!r}")
        arrays = {"logit": data[keys[0]].astype(np.float32), "label": data[keys[1]]}
        if f"{split}_file_name" in data:
            arrays["file_name"] = data[f"{split}_file_name"]
        splits[split] = arrays
    return tfds_io.write_dataset(
        spec, version, data_dir, splits, feature_dim=_width(splits), overwrite=overwrite
    )
