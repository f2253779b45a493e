"""Raw inputs: image decoding, BYOL evaluation preprocessing, CelebA annotations and split
rule (docs/data.md#celeba), ImageNet folder trees (docs/data.md#byol-features)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from noisy_emcom.data.errors import DataError

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
CELEBA_LANDMARKS = (
    "lefteye_x",
    "lefteye_y",
    "righteye_x",
    "righteye_y",
    "nose_x",
    "nose_y",
    "leftmouth_x",
    "leftmouth_y",
    "rightmouth_x",
    "rightmouth_y",
)
CELEBA_NUM_IDENTITIES = 10177
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def require_dir(path: str | Path, what: str) -> Path:
    """`path` as a Path, or a DataError naming it when it is not a folder."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: {what} folder not found")
    return path


def require_file(path: str | Path, what: str) -> Path:
    """`path` as a Path, or a DataError naming it when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    return path


def decode_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 [H, W, 3]; a DataError names a file that fails."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError as e:
        raise DataError(f"{path}: image file not found") from e
    except Exception as e:  # noqa: BLE001 - PIL raises many types for corrupt files
        raise DataError(f"{path}: image does not decode ({e})") from e


# --------------------------------------------------------------------------------------------
# BYOL evaluation preprocessing
# --------------------------------------------------------------------------------------------


def centre_crop_box(h: int, w: int, fraction: float = 0.875) -> tuple[int, int, int]:
    """Square crop (top, left, side): s = ⌊f·min(h,w)⌋, offsets (⌊(h−s+1)/2⌋, ⌊(w−s+1)/2⌋)."""
    s = int(np.floor(fraction * min(h, w)))
    return (h - s + 1) // 2, (w - s + 1) // 2, s


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys cubic convolution kernel (a = −0.5)."""
    x = np.abs(x)
    return np.where(
        x <= 1,
        ((a + 2) * x - (a + 3)) * x * x + 1,
        np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0),
    )


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Resampling matrix [n_out, n_in] for half-pixel-centred bicubic interpolation without
    antialiasing (source x = (o + 0.5)·n_in/n_out − 0.5, taps ⌊x⌋−1..⌊x⌋+2 clamped to the
    border, Keys a = −0.5), as in TensorFlow's `resize(..., 'bicubic')`."""
    x = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    base = np.floor(x).astype(np.int64)
    m = np.zeros((n_out, n_in))
    for t in range(-1, 3):
        idx = base + t
        m[np.arange(n_out), np.clip(idx, 0, n_in - 1)] += _cubic(x - idx)
    return m


def byol_preprocess(image: np.ndarray, size: int = 224) -> np.ndarray:
    """BYOL evaluation preprocessing: uint8 [H,W,3] → float32 [size,size,3].

    Centre crop (`centre_crop_box`), bicubic resize in float, /255, clip to [0,1],
    (x − mean)/std with ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
    """
    top, left, s = centre_crop_box(*image.shape[:2])
    crop = image[top : top + s, left : left + s].astype(np.float32)
    my, mx = bicubic_matrix(s, size).astype(np.float32), bicubic_matrix(s, size).astype(np.float32)
    out = np.einsum("ij,jkc,lk->ilc", my, crop, mx)
    out = np.clip(out / 255.0, 0.0, 1.0)
    return ((out - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def celeba_small_image(image: np.ndarray, size: int = 64) -> np.ndarray:
    """CelebA `image` feature: centre 178×178 crop (rows 20..197), antialiased bilinear
    resize to size×size → uint8 [size,size,3]."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(image[top : top + side, left : left + side])
    return np.asarray(crop.resize((size, size), Image.BILINEAR, reducing_gap=None))


# --------------------------------------------------------------------------------------------
# CelebA annotations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CelebAAnnotations:
    """CelebA annotations in ascending file-name order.

    files [N] str, image_id [N] int64 (file stem), identity [N] int64 (1..10177),
    attributes [N,40] bool (file order of `CELEBA_ATTRIBUTES`), landmarks [N,10] int64.
    """

    files: list[str]
    image_id: np.ndarray
    identity: np.ndarray
    attributes: np.ndarray
    landmarks: np.ndarray


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text annotation file ({e})") from e


def _parse_table(path: Path, names: tuple[str, ...], header: bool) -> dict[str, list[str]]:
    """Rows `<file> v1 .. vk` (k = len(names)) → {file: [values]}; with `header`, line 1 is the
    count and line 2 the column names, which must equal `names`."""
    lines = _read_lines(require_file(path, "annotation"))
    start = 0
    if header:
        if len(lines) < 2:
            raise DataError(f"{path}: missing the count and column-name header lines")
        got = tuple(lines[1].split())
        if got != names:
            raise DataError(
                f"{path}: line 2 has columns {list(got)[:3]}..., expected "
                f"{list(names)[:3]}... ({len(names)} names)"
            )
        start = 2
    rows: dict[str, list[str]] = {}
    for n, line in enumerate(lines[start:], start=start + 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1:
            raise DataError(f"{path}:{n}: expected {len(names) + 1} fields, got {len(fields)}")
        if fields[0] in rows:
            raise DataError(f"{path}:{n}: duplicate entry for {fields[0]}")
        rows[fields[0]] = fields[1:]
    if header:
        try:
            count = int(lines[0].split()[0])
        except (ValueError, IndexError) as e:
            raise DataError(f"{path}:1: expected the number of entries") from e
        if count != len(rows):
            raise DataError(f"{path}: header says {count} entries, found {len(rows)}")
    return rows


def _ints(path: Path, file: str, values: list[str]) -> list[int]:
    try:
        return [int(v) for v in values]
    except ValueError as e:
        raise DataError(f"{path}: entry {file}: non-integer value ({e})") from e


def read_celeba_annotations(root: str | Path) -> CelebAAnnotations:
    """Parse `identity_CelebA.txt`, `list_attr_celeba.txt` and
    `list_landmarks_align_celeba.txt` under `root`; every file must list the same images."""
    root = require_dir(root, "CelebA")
    id_path = root / "identity_CelebA.txt"
    attr_path = root / "list_attr_celeba.txt"
    lm_path = root / "list_landmarks_align_celeba.txt"
    ids = _parse_table(id_path, ("identity",), header=False)
    attrs = _parse_table(attr_path, CELEBA_ATTRIBUTES, header=True)
    lms = _parse_table(lm_path, CELEBA_LANDMARKS, header=True)
    files = sorted(ids)
    for path, table in ((attr_path, attrs), (lm_path, lms)):
        if set(table) != set(ids):
            missing = sorted(set(ids) ^ set(table))[0]
            raise DataError(
                f"{path}: image {missing} is not listed in both {path.name} and {id_path.name}"
            )
    identity = np.array([_ints(id_path, f, ids[f])[0] for f in files], np.int64)
    bad = np.flatnonzero((identity < 1) | (identity > CELEBA_NUM_IDENTITIES))
    if len(bad):
        raise DataError(
            f"{id_path}: identity {identity[bad[0]]} of {files[bad[0]]} is outside "
            f"1..{CELEBA_NUM_IDENTITIES}"
        )
    attr_vals = np.array([_ints(attr_path, f, attrs[f]) for f in files], np.int64).reshape(
        len(files), len(CELEBA_ATTRIBUTES)
    )
    if not np.isin(attr_vals, (-1, 1)).all():
        i = int(np.flatnonzero(~np.isin(attr_vals, (-1, 1)).all(1))[0])
        raise DataError(f"{attr_path}: entry {files[i]}: attribute values must be 1 or -1")
    landmarks = np.array([_ints(lm_path, f, lms[f]) for f in files], np.int64).reshape(
        len(files), len(CELEBA_LANDMARKS)
    )
    try:
        image_id = np.array([int(Path(f).stem) for f in files], np.int64)
    except ValueError as e:
        raise DataError(f"{id_path}: file names must be numbers like 000001.jpg ({e})") from e
    return CelebAAnnotations(files, image_id, identity, attr_vals == 1, landmarks)


def celeba_custom_split(identity: np.ndarray) -> np.ndarray:
    """Custom split (docs/data.md#celeba) of images in file order → [N] split names.

    k = number of earlier images of the same identity; k > 0 and k mod 5 = 0 → held out:
    `valid` for even identities, `test` for odd; everything else `train`.
    """
    seen: dict[int, int] = {}
    out = np.empty(len(identity), dtype=object)
    for n, ident in enumerate(identity.tolist()):
        k = seen.get(ident, 0)
        seen[ident] = k + 1
        held = k > 0 and k % 5 == 0
        out[n] = ("valid" if ident % 2 == 0 else "test") if held else "train"
    return out.astype(str)


def celeba_official_split(root: str | Path, files: list[str]) -> np.ndarray:
    """Official split from `list_eval_partition.txt` (0/1/2 → train/valid/test) → [N] names."""
    path = Path(root) / "list_eval_partition.txt"
    table = _parse_table(path, ("partition",), header=False)
    names = {"0": "train", "1": "valid", "2": "test"}
    out = []
    for f in files:
        if f not in table:
            raise DataError(f"{path}: image {f} has no partition entry")
        if table[f][0] not in names:
            raise DataError(f"{path}: entry {f}: partition must be 0, 1 or 2")
        out.append(names[table[f][0]])
    return np.array(out)


def celeba_split(root: str | Path, ann: CelebAAnnotations, rule: str = "custom") -> np.ndarray:
    """Split name per image for `rule` in {`custom`, `official`} → [N] str."""
    if rule == "custom":
        return celeba_custom_split(ann.identity)
    if rule == "official":
        return celeba_official_split(root, ann.files)
    raise DataError(f"unknown CelebA split rule {rule!r}; expected 'custom' or 'official'")


def celeba_image_paths(root: str | Path, files: list[str]) -> list[Path]:
    """Paths under `root/img_align_celeba/`; a DataError names the folder or first missing
    file."""
    folder = require_dir(Path(root) / "img_align_celeba", "CelebA image")
    paths = [folder / f for f in files]
    for p in paths:
        if not p.is_file():
            raise DataError(f"{p}: image file not found")
    return paths


# --------------------------------------------------------------------------------------------
# ImageNet folder tree
# --------------------------------------------------------------------------------------------

IMAGENET_SPLITS = {"train": "train", "test": "val"}
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def imagenet_files(root: str | Path) -> dict[str, tuple[list[Path], np.ndarray]]:
    """`root/train/<wnid>/*.JPEG` and `root/val/<wnid>/*.JPEG` → {split: (paths, labels)}.

    Labels are the rank of the wnid among the sorted `train` wnids; splits `train` and `test`
    (= ILSVRC validation). Files are sorted by (wnid, name).
    """
    root = require_dir(root, "ImageNet")
    train = require_dir(root / "train", "ImageNet train")
    wnids = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not wnids:
        raise DataError(f"{train}: no class folders")
    rank = {w: i for i, w in enumerate(wnids)}
    out = {}
    for split, sub in IMAGENET_SPLITS.items():
        folder = require_dir(root / sub, f"ImageNet {sub}")
        paths, labels = [], []
        for d in sorted(p for p in folder.iterdir() if p.is_dir()):
            if d.name not in rank:
                raise DataError(f"{d}: class {d.name} does not occur in {train}")
            files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            paths += files
            labels += [rank[d.name]] * len(files)
        if not paths:
            raise DataError(f"{folder}: no images found")
        out[split] = (paths, np.array(labels, np.int64))
    return out
