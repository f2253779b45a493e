"""CelebA raw files → annotations, split rule, TFDS variants → loader; bad inputs."""

import numpy as np
import pytest
from PIL import Image

from noisy_emcom.data import builders, files, loader, raw
from noisy_emcom.data.errors import DataError

ATTR = raw.CELEBA_ATTRIBUTES
LM = raw.CELEBA_LANDMARKS


def write_celeba(root, identities, seed=0):
    """Tiny CelebA folder: 178×218 JPEGs and the three annotation files."""
    rng = np.random.default_rng(seed)
    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(identities))]
    for n in names:
        Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(img_dir / n)
    (root / "identity_CelebA.txt").write_text(
        "".join(f"{n} {i}\n" for n, i in zip(names, identities, strict=True))
    )
    attrs = rng.choice([-1, 1], size=(len(names), 40))
    (root / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n{' '.join(ATTR)}\n"
        + "".join(
            f"{n}  " + "  ".join(f"{v:2d}" for v in a) + "\n"
            for n, a in zip(names, attrs, strict=True)
        )
    )
    lms = rng.integers(0, 178, size=(len(names), 10))
    (root / "list_landmarks_align_celeba.txt").write_text(
        f"{len(names)}\n{' '.join(LM)}\n"
        + "".join(f"{n} " + " ".join(map(str, v)) + "\n" for n, v in zip(names, lms, strict=True))
    )
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{n} {k % 3}\n" for k, n in enumerate(names))
    )
    return names, attrs == 1, lms


def test_custom_split_rule():
    ident = np.array([1] * 12 + [2] * 7 + [3])
    s = raw.celeba_custom_split(ident)
    # identity 1 (odd): 6th and 11th images → test; identity 2 (even): 6th → valid
    assert list(np.flatnonzero(s == "test")) == [5, 10]
    assert list(np.flatnonzero(s == "valid")) == [12 + 5]
    assert (s == "train").sum() == 20 - 3


def test_annotations_parsed(tmp_path):
    names, attrs, lms = write_celeba(tmp_path, [3, 3, 4])
    ann = raw.read_celeba_annotations(tmp_path)
    assert ann.files == names and list(ann.image_id) == [1, 2, 3]
    assert np.array_equal(ann.attributes, attrs) and np.array_equal(ann.landmarks, lms)
    official = raw.celeba_split(tmp_path, ann, "official")
    assert list(official) == ["train", "valid", "test"]


@pytest.mark.parametrize(
    "fname,line,message",
    [
        (
            "list_attr_celeba.txt",
            "000002.jpg 1 -1\n",
            r"list_attr_celeba.txt:4: expected 41 fields",
        ),
        (
            "list_landmarks_align_celeba.txt",
            "000002.jpg 1 2 3\n",
            r"list_landmarks_align_celeba.txt:4: expected 11 fields",
        ),
        ("identity_CelebA.txt", "000002.jpg 1 2\n", r"identity_CelebA.txt:2: expected 2 fields"),
    ],
)
def test_annotation_wrong_field_count(tmp_path, fname, line, message):
    write_celeba(tmp_path, [1, 1, 2])
    path = tmp_path / fname
    lines = path.read_text().splitlines(keepends=True)
    header = 2 if fname != "identity_CelebA.txt" else 0
    lines[header + 1] = line
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=message):
        raw.read_celeba_annotations(tmp_path)


def test_missing_inputs(tmp_path):
    with pytest.raises(DataError, match="CelebA folder not found"):
        raw.read_celeba_annotations(tmp_path / "nope")
    write_celeba(tmp_path, [1, 2])
    (tmp_path / "list_attr_celeba.txt").unlink()
    with pytest.raises(DataError, match="list_attr_celeba.txt: annotation file not found"):
        raw.read_celeba_annotations(tmp_path)


def _features(tmp_path, n, dim=8):
    rng = np.random.default_rng(1)
    return files.save_npz(
        tmp_path / "feat.npz",
        {"logit": rng.random((n, dim), dtype=np.float32), "image_id": np.arange(1, n + 1)},
    )


@pytest.mark.slow
def test_build_and_load_round_trip(tmp_path):
    ident = [1] * 7 + [2] * 6 + [5]
    names, attrs, lms = write_celeba(tmp_path / "celeba", ident)
    feat = _features(tmp_path, len(names))
    outs = builders.build_celeba(tmp_path / "celeba", feat, tmp_path / "tfds")
    assert [p.name for p in outs] == ["2.0.0"] * 3
    split = raw.celeba_custom_split(np.array(ident))
    logits = np.load(feat)["logit"]
    for s in ("train", "valid", "test"):
        sel = np.flatnonzero(split == s)
        d = loader.load_split(
            "celeba",
            s,
            tmp_path / "tfds",
            ("logit", "image_id", "label", "attributes", "landmarks", "image"),
            feature_dim=8,
        )
        assert np.array_equal(d["image_id"], sel + 1)
        assert np.array_equal(d["logit"], logits[sel])
        assert np.array_equal(d["attributes"], attrs[sel])
        assert np.array_equal(d["landmarks"], lms[sel])
        assert np.array_equal(d["label"], np.array(ident)[sel])
        assert d["image"].shape == (len(sel), 64, 64, 3) and d["image"].dtype == np.uint8
        same = loader.load_split("celeba_logits", s, tmp_path / "tfds", feature_dim=8)
        assert np.array_equal(same["logit"], d["logit"])
    assert loader.attribute_names("celeba_noimg", tmp_path / "tfds") == list(ATTR)
    with pytest.raises(DataError, match="'celeba_logits' has no field 'attributes'"):
        loader.load_split(
            "celeba_logits", "train", tmp_path / "tfds", ("attributes",), feature_dim=8
        )
    with pytest.raises(
        DataError,
        match=r"'celeba_noimg': field 'logit' has shape \(8,\), "
        r"expected \(2048,\)",
    ):
        loader.load_split("celeba_noimg", "train", tmp_path / "tfds")


def test_bad_image_stops_build(tmp_path):
    names, _, _ = write_celeba(tmp_path / "celeba", [1, 2])
    (tmp_path / "celeba" / "img_align_celeba" / names[1]).write_bytes(b"broken")
    feat = _features(tmp_path, 2)
    with pytest.raises(DataError, match="000002.jpg: image does not decode"):
        builders.celeba_split_arrays(tmp_path / "celeba", feat)
    (tmp_path / "celeba" / "img_align_celeba" / names[1]).unlink()
    with pytest.raises(DataError, match="000002.jpg: image file not found"):
        builders.celeba_split_arrays(tmp_path / "celeba", feat)
