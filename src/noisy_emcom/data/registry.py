"""Registry of the dataset variants (docs/data.md): sweep name → TFDS name, family, fields."""

from __future__ import annotations

from dataclasses import dataclass

from noisy_emcom.data import raw, shapes
from noisy_emcom.data.errors import DataError

BYOL_DIM = 2048
SHAPES_DIM = 512

LOGIT_FIELDS = ("logit", "image_id")
NOIMG_FIELDS = LOGIT_FIELDS + ("label", "attributes", "landmarks")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset variant.

    fields: the feature keys it holds; feature_dim: default `logit` width (shapes: configurable);
    label_depth: one-hot depth of `label` (0 = no label).
    """

    sweep: str
    tfds_name: str
    family: str
    variant: str
    fields: tuple[str, ...]
    splits: tuple[str, ...]
    feature_dim: int
    label_depth: int
    attribute_names: tuple[str, ...] = ()
    landmark_names: tuple[str, ...] = ()


_CELEBA = dict(
    family="celeba",
    splits=("train", "valid", "test"),
    feature_dim=BYOL_DIM,
    label_depth=raw.CELEBA_NUM_IDENTITIES + 1,
    attribute_names=raw.CELEBA_ATTRIBUTES,
    landmark_names=raw.CELEBA_LANDMARKS,
)
_SHAPES = dict(
    family="shapes",
    splits=("train", "valid", "test"),
    feature_dim=SHAPES_DIM,
    label_depth=shapes.NUM_CLASSES,
    attribute_names=tuple(shapes.ATTRIBUTE_NAMES),
    landmark_names=shapes.LANDMARK_NAMES,
)

DATASETS: dict[str, DatasetSpec] = {
    s.sweep: s
    for s in (
        DatasetSpec(
            "imagenet",
            "byol_imagenet2012",
            "imagenet",
            "logits",
            ("logit", "label"),
            ("train", "test"),
            BYOL_DIM,
            1000,
        ),
        DatasetSpec(
            "celeba_logits",
            "byol_celeb_a2_logits",
            variant="logits",
            fields=LOGIT_FIELDS,
            **_CELEBA,
        ),
        DatasetSpec(
            "celeba_noimg", "byol_celeb_a2_noimg", variant="noimg", fields=NOIMG_FIELDS, **_CELEBA
        ),
        DatasetSpec(
            "celeba", "byol_celeb_a2", variant="image", fields=NOIMG_FIELDS + ("image",), **_CELEBA
        ),
        DatasetSpec(
            "shapes_logits", "shapes_logits", variant="logits", fields=LOGIT_FIELDS, **_SHAPES
        ),
        DatasetSpec(
            "shapes_noimg",
            "shapes_noimg",
            variant="noimg",
            fields=NOIMG_FIELDS + ("factors",),
            **_SHAPES,
        ),
        DatasetSpec(
            "shapes",
            "shapes",
            variant="image",
            fields=NOIMG_FIELDS + ("factors", "image"),
            **_SHAPES,
        ),
    )
}
# Names a user dataset may not take: the built-in datasets and the presets' synthetic table
# `debug` (configs.common.DATASETS), which the scripts would load instead of the user's.
RESERVED_NAMES = frozenset((*DATASETS, "debug"))
# Optional fields a variant may hold (re-extracted ImageNet keeps file names).
OPTIONAL_FIELDS = {"imagenet": ("file_name",)}


# User datasets (docs/data.md#your-own-data), registered from the config or a data_dir.
USER_DATASETS: dict[str, DatasetSpec] = {}


def user_spec(
    name: str,
    fields,
    feature_dim: int = 0,
    label_depth: int = 0,
    attribute_names=(),
) -> DatasetSpec:
    """The spec of a user dataset (family `own`, one TFDS dataset with every field)."""
    from noisy_emcom.data import own

    own.check_name(name, RESERVED_NAMES)
    return DatasetSpec(
        name,
        own.tfds_name(name),
        "own",
        "own",
        tuple(fields),
        ("train", "valid", "test"),
        int(feature_dim),
        int(label_depth),
        tuple(attribute_names),
    )


def register(spec: DatasetSpec) -> DatasetSpec:
    """Make a user dataset known by name (to the presets, the loader and ETL)."""
    USER_DATASETS[spec.sweep] = spec
    return spec


def discover(data_dir, name: str | None = None) -> list[str]:
    """Register the user datasets built under `data_dir` (or only `name`) → their names."""
    from pathlib import Path

    from noisy_emcom.data import own

    if not data_dir or not Path(data_dir).is_dir():
        return []
    names = (
        [name]
        if name
        else [p.name.removeprefix(own.TFDS_PREFIX) for p in Path(data_dir).glob("own_*")]
    )
    found = []
    for n in names:
        if n in RESERVED_NAMES:
            continue
        rec = own.read_provenance(data_dir, n)
        if rec is not None and rec.get("name") == n:  # not a renamed copy of another folder
            register(spec_from_provenance(rec))
            found.append(n)
    return found


def spec_from_provenance(rec: dict) -> DatasetSpec:
    return user_spec(
        rec["name"],
        rec["fields"],
        rec.get("feature_dim", 0),
        rec.get("label_depth", 0),
        rec.get("attribute_names", ()),
    )


def get_spec(sweep: str, data_dir=None) -> DatasetSpec:
    """The spec of a sweep name (a user dataset is looked up in `data_dir` when not yet
    registered); a DataError lists the known names."""
    if sweep in DATASETS:
        return DATASETS[sweep]
    if sweep not in USER_DATASETS and data_dir:
        discover(data_dir, sweep)
    if sweep not in USER_DATASETS:
        where = f" and no user dataset {sweep!r} in {data_dir}" if data_dir else ""
        raise DataError(
            f"unknown dataset {sweep!r}; known: {', '.join([*DATASETS, *USER_DATASETS])}{where}"
        )
    return USER_DATASETS[sweep]


def datasets_with(field: str) -> list[str]:
    """Sweep names whose variant holds `field` (e.g. `attributes`)."""
    every = {**DATASETS, **USER_DATASETS}
    return [s for s, spec in every.items() if field in spec.fields]


def require_fields(sweep: str, fields, data_dir=None) -> DatasetSpec:
    """Check that `sweep` has every field; the error names the dataset, the field and the
    datasets that do have it."""
    spec = get_spec(sweep, data_dir)
    for field in fields:
        if field not in spec.fields + OPTIONAL_FIELDS.get(sweep, ()):
            have = ", ".join(datasets_with(field)) or "none"
            raise DataError(f"dataset {sweep!r} has no field {field!r}; datasets with it: {have}")
    return spec


def family_variants(family: str) -> list[DatasetSpec]:
    """Specs of a family (`imagenet`, `celeba`, `shapes`), logits first."""
    return [s for s in DATASETS.values() if s.family == family]
