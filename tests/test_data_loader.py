"""Shapes pipeline through the CLI scripts, ImageNet folder build, loader paths and checks."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from noisy_emcom.data import builders, convert, files, loader, raw, registry, tfds_io
from noisy_emcom.data.errors import DataError

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"


def script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


@pytest.mark.slow
def test_shapes_pipeline_through_scripts(tmp_path):
    sizes = {"train": 64, "valid": 16, "test": 16}
    for s, n in sizes.items():
        assert (
            script("make_shapes")(
                ["--split", s, "--num", str(n), "--out", str(tmp_path / f"raw_{s}.npz")]
            )
            == 0
        )
    assert (
        script("train_encoder")(
            [
                "--train",
                str(tmp_path / "raw_train.npz"),
                "--out-params",
                str(tmp_path / "enc.npz"),
                "--out-metrics",
                str(tmp_path / "enc.json"),
                "--width",
                "16",
                "--steps",
                "3",
                "--batch-size",
                "8",
            ]
        )
        == 0
    )
    for s in sizes:
        assert (
            script("encode_shapes")(
                [
                    "--params",
                    str(tmp_path / "enc.npz"),
                    "--raw",
                    str(tmp_path / f"raw_{s}.npz"),
                    "--out",
                    str(tmp_path / f"feat_{s}.npz"),
                ]
            )
            == 0
        )
    args = [
        "--family",
        "shapes",
        "--data-dir",
        str(tmp_path / "tfds"),
        "--encoder-params",
        str(tmp_path / "enc.npz"),
        "--encoder-metrics",
        str(tmp_path / "enc.json"),
    ]
    for s in sizes:
        args += [
            "--raw",
            f"{s}={tmp_path / f'raw_{s}.npz'}",
            "--features",
            f"{s}={tmp_path / f'feat_{s}.npz'}",
        ]
    assert script("build_tfds")(args) == 0
    assert not list(tmp_path.glob("**/*.tmp-*")) and not list(tmp_path.glob("**/incomplete*"))
    enc = tmp_path / "tfds" / "shapes_logits" / "2.0.0" / "encoder"
    acc = json.loads((enc / "encoder_accuracy.json").read_text())
    assert set(acc["accuracy"]) == set(sizes) and (enc / "encoder_params.npz").is_file()
    raw_test = np.load(tmp_path / "raw_test.npz")
    d = loader.load_split(
        "shapes",
        "test",
        tmp_path / "tfds",
        ("logit", "label", "attributes", "landmarks", "image", "factors"),
    )
    for k in ("label", "attributes", "landmarks", "image", "factor_rotation"):
        assert np.array_equal(d[k], raw_test[k]), k
    assert np.array_equal(d["logit"], np.load(tmp_path / "feat_test.npz")["logit"])
    assert d["logit"].shape == (16, 16) and (d["logit"] >= 0).all()
    small = loader.load_split("shapes_logits", "test", tmp_path / "tfds", chunk=5)
    assert np.array_equal(small["logit"], d["logit"])
    with pytest.raises(DataError, match=r"'shapes_noimg': field 'logit' has shape \(16,\)"):
        loader.load_split("shapes_noimg", "train", tmp_path / "tfds", feature_dim=512)
    stream = loader.open_stream("shapes_noimg", "test", tmp_path / "tfds")
    assert (stream.num_examples, stream.feature_dim) == (16, 16)
    assert np.array_equal(stream.gather([3, 0, 3]), d["logit"][[3, 0, 3]])
    # The direct record parser gives exactly TFDS's own decoding (values and dtypes).
    fields = ("logit", "label", "image_id", "attributes", "landmarks", "image", "factors")
    parsed = loader.load_split("shapes", "test", tmp_path / "tfds", fields, chunk=7)
    rows = tfds_io.data_source(tmp_path / "tfds", "shapes")[0]["test"].__getitems__(range(16))
    for field in fields:
        for key, want in loader._stack(registry.get_spec("shapes"), field, rows).items():
            assert parsed[key].dtype == want.dtype and np.array_equal(parsed[key], want), key
    # refuse to overwrite a finished dataset
    assert script("build_tfds")(args) == 1


def test_npz_and_npy_datasets(tmp_path):
    rng = np.random.default_rng(0)
    table = rng.random((10, 4), dtype=np.float32)
    npy = files.save_npy(tmp_path / "table.npy", table)
    npz = files.save_npz(
        tmp_path / "d.npz",
        {
            "train": table,
            "test_logit": table[:3],
            "test_label": np.arange(3),
            "attribute_names": np.array(["a", "b"]),
        },
    )
    assert np.array_equal(loader.load_split(str(npy), "test", None)["logit"], table)
    assert np.array_equal(loader.load_split(str(npz), "train", None)["logit"], table)
    d = loader.load_split(str(npz), "test", None, ("logit", "label"))
    assert np.array_equal(d["label"], np.arange(3))
    assert loader.attribute_names(str(npz)) == ["a", "b"]
    with pytest.raises(DataError, match="no array 'valid_logit' or 'valid'"):
        loader.load_split(str(npz), "valid", None)
    with pytest.raises(DataError, match=r"field 'logit' has shape \(10, 4\), expected \(N, 8\)"):
        loader.load_split(str(npy), "train", None, feature_dim=8)
    with pytest.raises(DataError, match="holds only a logit table; field 'label'"):
        loader.load_split(str(npy), "train", None, ("logit", "label"))
    with pytest.raises(DataError, match="dataset file not found"):
        loader.load_split(str(tmp_path / "missing.npy"), "train", None)
    stream = loader.open_stream(str(npy), "train", None)
    assert np.array_equal(stream.gather([9, 1]), table[[9, 1]])


def test_registry_and_errors(tmp_path):
    assert registry.datasets_with("attributes") == [
        "celeba_noimg",
        "celeba",
        "shapes_noimg",
        "shapes",
    ]
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        loader.load_split("mnist", "train", tmp_path)
    with pytest.raises(DataError, match="byol_imagenet2012: dataset not found"):
        loader.load_split("imagenet", "train", tmp_path)
    assert loader.label_depth("celeba") == 10178 and loader.label_depth("shapes_noimg") == 48


def test_etl_helpers():
    assert loader.one_hot(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(DataError, match="outside 0..2"):
        loader.one_hot(np.array([3]), 3)
    oh = loader.attribute_one_hots(np.array([[True, False]]))
    assert oh.shape == (1, 2, 2) and oh[0, 0].tolist() == [0, 1]
    x = loader.scale_images(np.array([0, 255], np.uint8))
    assert x.tolist() == [-1.0, 1.0]


def _imagenet_tree(root):
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("val", 1)):
        for wnid in ("n02", "n01"):
            d = root / split / wnid
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                    d / f"{wnid}_{i}.JPEG"
                )


def test_imagenet_tree_and_build(tmp_path):
    _imagenet_tree(tmp_path / "in")
    tree = raw.imagenet_files(tmp_path / "in")
    assert list(tree["train"][1]) == [0, 0, 1, 1] and list(tree["test"][1]) == [0, 1]
    feats = {
        "train_logit": np.ones((4, 2048), np.float32),
        "train_label": tree["train"][1],
        "train_file_name": np.array([p.name for p in tree["train"][0]]),
        "test_logit": np.zeros((2, 2048), np.float32),
        "test_label": tree["test"][1],
        "test_file_name": np.array([p.name for p in tree["test"][0]]),
    }
    f = files.save_npz(tmp_path / "feat.npz", feats)
    builders.build_imagenet(f, tmp_path / "tfds")
    d = loader.load_split("imagenet", "train", tmp_path / "tfds", ("logit", "label", "file_name"))
    assert d["logit"].shape == (4, 2048) and list(d["label"]) == [0, 0, 1, 1]
    assert d["file_name"][0] == "n01_0.JPEG"
    (tmp_path / "in" / "val" / "n99").mkdir()
    with pytest.raises(DataError, match="n99: class n99 does not occur"):
        raw.imagenet_files(tmp_path / "in")
    with pytest.raises(DataError, match="ImageNet folder not found"):
        raw.imagenet_files(tmp_path / "none")


def test_convert_records_without_tensorflow(tmp_path):
    spec = registry.get_spec("celeba_noimg")
    recs = [
        {
            "logit": np.arange(4, dtype=np.float32),
            "label": np.array([7]),
            "image_id": np.array([i + 1]),
            **{f"attributes/{a}": np.array([i % 2]) for a in spec.attribute_names},
            **{f"landmarks/{k}": np.array([i]) for k in spec.landmark_names},
        }
        for i in range(3)
    ]
    out = convert.records_to_arrays(spec, recs, "src")
    assert out["logit"].shape == (3, 4) and out["attributes"][1].all()
    assert list(out["image_id"]) == [1, 2, 3] and out["landmarks"][2].tolist() == [2] * 10
    del recs[1]["landmarks/nose_x"]
    with pytest.raises(DataError, match="src: record 1 has no 'landmarks/nose_x'"):
        convert.records_to_arrays(spec, recs, "src")
    # conversion end to end with an injected record reader (the TFRecord part needs TF)
    folder = tmp_path / "byol_celeb_a2" / "1.0.0"
    folder.mkdir(parents=True)
    for s in ("train", "test"):
        (folder / f"byol_celeb_a2-{s}.tfrecord-00000-of-00001").write_bytes(b"")
    good = [r for r in recs if "landmarks/nose_x" in r]
    path = convert.convert_published(
        folder, "celeba_noimg", tmp_path / "tfds", read_records=lambda paths: iter(good)
    )
    assert path.name == "1.0.0"
    d = loader.load_split(
        "celeba_noimg:1.0.0", "test", tmp_path / "tfds", ("logit", "label"), feature_dim=4
    )
    assert d["logit"].shape == (2, 4) and list(d["label"]) == [7, 7]


def test_convert_needs_tensorflow_message(tmp_path):
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match=r"needs TensorFlow.*pip install -e '.\[tf\]'"):
            convert.require_tensorflow()
    else:
        pytest.skip("TensorFlow is installed; the missing-TF message cannot be shown")


def test_convert_tfrecords_with_tensorflow(tmp_path):
    tf = pytest.importorskip("tensorflow", reason="TensorFlow not installed (extra [tf])")
    folder = tmp_path / "pub" / "1.0.0"
    folder.mkdir(parents=True)
    for s, n in (("train", 3), ("test", 2)):
        with tf.io.TFRecordWriter(
            str(folder / f"byol_imagenet2012-{s}.tfrecord-00000-of-00001")
        ) as w:
            for i in range(n):
                ex = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "logit": tf.train.Feature(
                                float_list=tf.train.FloatList(value=[float(i)] * 2048)
                            ),
                            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
                        }
                    )
                )
                w.write(ex.SerializeToString())
    convert.convert_published(folder, "imagenet", tmp_path / "tfds")
    d = loader.load_split("imagenet:1.0.0", "train", tmp_path / "tfds", ("logit", "label"))
    assert d["logit"].shape == (3, 2048) and list(d["label"]) == [0, 1, 2]


def test_empty_split_is_refused(tmp_path):
    from noisy_emcom.data import tfds_io

    spec = registry.get_spec("imagenet")
    splits = {"train": {"logit": np.zeros((0, 4), np.float32), "label": np.zeros(0, np.int64)}}
    with pytest.raises(DataError, match="byol_imagenet2012: split 'train' is empty"):
        tfds_io.write_dataset(spec, "2.0.0", tmp_path, splits, feature_dim=4)
    bad = {"train": {"logit": np.zeros((2, 4), np.float32), "label": np.zeros(3, np.int64)}}
    with pytest.raises(DataError, match="array 'label' has shape"):
        tfds_io.write_dataset(spec, "2.0.0", tmp_path, bad, feature_dim=4)


def test_damaged_shard_and_stray_folder(tmp_path, capsys):
    """A folder that is not a version `X.Y.Z` (a backup) is ignored; a truncated array_record
    shard is a DataError naming the shard, which train.py prints as one `error:` line."""
    from faultkit import load_script, train_args

    spec = registry.get_spec("imagenet")
    rng = np.random.default_rng(0)
    splits = {
        s: {"logit": rng.random((n, 2048), dtype=np.float32), "label": np.arange(n)}
        for s, n in (("train", 40), ("test", 8))
    }
    out = tfds_io.write_dataset(spec, "2.0.0", tmp_path, splits, feature_dim=2048)
    shutil.copytree(out, out.parent / "2.0.0.bak")
    assert tfds_io.versions(tmp_path, spec.tfds_name) == ["2.0.0"]
    assert loader.load_split("imagenet", "train", tmp_path)["logit"].shape == (40, 2048)

    shard = next(out.glob("*-train.array_record-*"))
    whole = shard.read_bytes()
    message = f"{shard}: cannot read the records of split 'train' .*truncated"
    for cut in (len(whole) // 2, 100):  # past the 64 KiB minimum, and below it
        shard.write_bytes(whole[:cut])
        with pytest.raises(DataError, match=message):
            loader.load_split("imagenet", "train", tmp_path)
        with pytest.raises(DataError, match=message):
            loader.open_stream("imagenet", "train", tmp_path).gather([3, 1])
    argv = [*train_args(tmp_path / "run"), "--dataset", "imagenet", "--data-dir", str(tmp_path)]
    assert load_script("train").main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {shard}: cannot read the records")
    assert not (tmp_path / "run" / "final.ckpt").exists()
