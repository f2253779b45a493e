"""Your own data through the whole DAG (docs/data.md#your-own-data): a feature table (D = 24,
labels, attributes) and a folder of PNG images (two classes) in one Snakemake run, and the
refusals (tasks the data cannot support, bad names, another table's width)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image, ImageDraw

from noisy_emcom.data import own
from noisy_emcom.data.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def make_table(path: Path, n=400, d=24, classes=4, seed=1) -> Path:
    """Gaussian blobs: `logit` [n, d], `label`, two binary attributes with names."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 3, (classes, d))[y] + rng.normal(0, 1, (n, d))
    attrs = np.stack([y % 2, y >= classes // 2], 1).astype(np.uint8)
    np.savez(
        path,
        logit=x.astype(np.float32),
        label=y,
        attributes=attrs,
        attribute_names=np.array(["odd", "high"]),
    )
    return path


def _npz(path: Path, **arrays) -> Path:
    """A .npz of `arrays` (e.g. X: 20 rows of 4 features, Y: their labels)."""
    np.savez(path, **arrays)
    return path


X = np.ones((20, 4), np.float32)
Y = np.arange(20) % 2


def _parquet(path: Path, **columns) -> Path:
    """A Parquet table: features f0..f3 (X), `label` (Y), `attr_big` (0/1), then `columns`."""
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)])
    df["label"], df["attr_big"] = Y, 1 - Y
    for name, values in columns.items():
        df[name] = values
    df.to_parquet(path)
    return path


def make_images(folder: Path, per_class=30, seed=2) -> Path:
    """PIL-drawn circles and squares (48×40 PNG, resized to 64×64 by the pipeline)."""
    rng = np.random.default_rng(seed)
    for shape in ("circle", "square"):
        (folder / shape).mkdir(parents=True)
        for i in range(per_class):
            im = Image.new("RGB", (48, 40), tuple(int(v) for v in rng.integers(0, 80, 3)))
            a, b, s = (int(v) for v in (*rng.integers(2, 14, 2), rng.integers(12, 22)))
            draw = ImageDraw.Draw(im)
            fill = tuple(int(v) for v in rng.integers(150, 256, 3))
            (draw.ellipse if shape == "circle" else draw.rectangle)((a, b, a + s, b + s), fill)
            im.save(folder / shape / f"{i:03d}.png")
    return folder


def config(tmp: Path, table: Path, images: Path) -> dict:
    return {
        "results": str(tmp / "res"),
        "data_dir": str(tmp / "res" / "tfds"),
        "conda_env": "envs/cpu.yaml",
        "xla_flags": "--xla_backend_optimization_level=0",
        "own_data": {
            "blobs": {"table": str(table)},
            "pics": {
                "images": str(images),
                "encoder": {"width": 16, "steps": 20, "batch_size": 16},
            },
        },
        "data": {"shapes": {"source": "none"}},
        "train": {
            "datasets": ["blobs", "pics"],
            "games": ["lg_s", "nlg"],
            "batch_sizes": [8],
            "seeds": [0],
            "overrides": {
                "training_steps": 20,
                "steps_per_call": 10,
                "log_every": 10,
                "checkpoint_every": 10,
                "speaker.lstm_size": 16,
                "listener.lstm_size": 16,
                "listener.hidden": 16,
            },
        },
        "tests": ["channel", "message", "input", "topsim", "measures"],
        "eval_overrides": {
            "eval.batch_sizes": [16],
            "eval.epochs": 1,
            "eval.topsim_ratios": [0.2],
            "eval.decodings": ["sample"],
            "eval.mask_counts": [0, 1],
        },
        "etl": {
            "tasks": {
                "blobs": ["discriminationdist", "classification", "attribute"],
                "pics": ["classification", "reconstruction"],
            },
            "noise": [0.5],
            "overrides": {
                "etl.training_steps": 10,
                "etl.log_every": 5,
                "etl.steps_per_call": 5,
                "etl.batch_size": 8,
            },
        },
    }


def snakemake(cfg: dict, tmp: Path, *args, check=True):
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PATH": f"{Path(PY).parent}:{os.environ['PATH']}"}
    res = subprocess.run(
        [PY, "-m", "snakemake", "--nolock", "--cores", "2", "--configfile", str(path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    if check and res.returncode:
        raise AssertionError(f"snakemake failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


@pytest.fixture
def data(tmp_path):
    return make_table(tmp_path / "blobs.npz"), make_images(tmp_path / "imgs")


def test_split_is_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [40, 8, 4])
    a = own.split_rows(len(labels), labels, 0.25, 0)
    b = own.split_rows(len(labels), labels, 0.25, 0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.bincount(labels[a["test"]]).tolist() == [10, 2, 1]
    assert not set(a["train"]) & set(a["test"])


def test_names_are_checked():
    with pytest.raises(DataError, match="'-' separates"):
        own.check_name("my-data", ())
    with pytest.raises(DataError, match="is reserved"):
        own.check_name("shapes", ("shapes",))
    assert own.file_label("My-Table.npz") == "my_table"
    # A table named like a built-in dataset does not take that dataset's preset or name.
    assert own.file_label("debug.npy") == "t_debug"
    assert own.file_label("imagenet.npz") == "t_imagenet"


def test_a_split_without_rows_is_refused(tmp_path):
    table = tmp_path / "tiny.npz"
    np.savez(table, logit=np.ones((3, 4), np.float32), label=np.array([0, 1, 2]))
    with pytest.raises(DataError, match="split 'test' has no rows"):
        own.build("tiny", tmp_path / "tfds", table=table)
    assert not list((tmp_path / "tfds").rglob("dataset_info.json"))


def test_table_and_image_folder_through_the_whole_dag(tmp_path, data):
    """One `snakemake` command: both datasets built, trained, tested, ETL'd and reported."""
    table, images = data
    cfg = config(tmp_path, *data)
    snakemake(cfg, tmp_path)
    res = tmp_path / "res"
    for name, width, fields in (("blobs", 24, "attributes"), ("pics", 16, "image")):
        rec = json.loads((res / "tfds" / f"own_{name}" / "1.0.0" / "provenance.json").read_text())
        assert rec["feature_dim"] == width and fields in rec["fields"]
        assert len(rec["source_sha256"]) == 64 and len(rec["features_sha256"]) == 64
        saved = json.loads((res / "runs" / f"nlg-{name}-b8-p0.5-s0" / "config.json").read_text())
        assert saved["dataset"]["name"] == name
        assert saved["dataset"]["sha256"] == rec["features_sha256"]
    blobs = json.loads((res / "tfds/own_blobs/1.0.0/provenance.json").read_text())
    assert blobs["splits"] == {"train": 300, "test": 100} and blobs["label_depth"] == 4
    channel = pd.read_csv(res / "report" / "tables" / "testchannel.csv")
    assert set(channel["dataset"]) == {"blobs", "pics"}
    etl = pd.read_csv(res / "report" / "tables" / "etl.csv")
    assert set(zip(etl["etl_dataset"], etl["task"], strict=True)) == {
        ("blobs", "discriminationdist"),
        ("blobs", "classification"),
        ("blobs", "attribute"),
        ("pics", "classification"),
        ("pics", "reconstruction"),
    }
    assert "blobs" in (res / "report" / "results.md").read_text()
    # Test the blobs model on the pics dataset: another width, refused naming both.
    out = subprocess.run(
        [
            PY,
            "workflow/scripts/test.py",
            "--checkpoint",
            str(res / "runs/lg_s-blobs-b8-p0.0-s0/final.ckpt"),
            "--dataset",
            "pics",
            "--data-dir",
            str(res / "tfds"),
            "--mode",
            "channel",
            "--out",
            str(tmp_path / "x.csv"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": "src"},
    )
    assert out.returncode == 1
    assert "'pics' has features of width 16" in out.stderr and "'blobs' (width 24)" in out.stderr
    # A second run has nothing to do.
    again = snakemake(cfg, tmp_path, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["etl"]["tasks"].update(pics=["attribute"]),
            "etl.tasks.pics: dataset pics cannot run task 'attribute': "
            "it has no field 'attributes'",
        ),
        (
            lambda c: c["etl"]["tasks"].update(blobs=["reconstruction"]),
            "dataset blobs cannot run task 'reconstruction': it has no field 'image'",
        ),
        (
            lambda c: c["train"].update(datasets=["nosuch"]),
            "train.datasets: unknown dataset 'nosuch'",
        ),
        (
            lambda c: c["own_data"].update(shapes={"table": c["own_data"]["blobs"]["table"]}),
            "own_data.shapes: dataset name 'shapes' is reserved",
        ),
        (
            lambda c: c["etl"]["overrides"].update({"etl.batch_size": 0}),
            "etl.overrides.etl.batch_size",
        ),
        (
            lambda c: c["own_data"]["blobs"].update(table="/no/such.npz"),
            "own_data.blobs: /no/such.npz: table file not found",
        ),
        (
            lambda c: c["own_data"]["blobs"].update(
                table=str(_npz(Path(c["results"]).parent / "m.npz", train=X, test=X, label=Y))
            ),
            "m.npz: flat arrays ['label'] mixed with per-split arrays ['test', 'train']",
        ),
        (
            lambda c: c["own_data"].update(blobs={"source": "/data/table.parquett"}),
            "own_data.blobs: /data/table.parquett: not a table (.npy, .npz, .parquet) and no "
            "image folder there",
        ),
        (
            lambda c: c["own_data"]["blobs"].update(
                table=str(_parquet(Path(c["results"]).parent / "p.parquet", lable=Y))
            ),
            "p.parquet: column 'lable': did you mean 'label'?",
        ),
    ],
)
def test_refused_by_the_dry_run(tmp_path, data, change, message):
    cfg = config(tmp_path, *data)
    change(cfg)
    res = snakemake(cfg, tmp_path, "-n", check=False)
    assert res.returncode != 0
    assert message in res.stdout + res.stderr


def test_parquet_npy_and_file_list_sources(tmp_path):
    """Parquet (split, label, attr_ columns), a bare .npy table and a CSV file list of images
    give the fields they hold; a pickled .npy is refused by name."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    df["label"] = np.arange(40) % 2
    df["attr_big"] = (x[:, 0] > 0).astype(int)
    df["split"] = ["train"] * 30 + ["test"] * 10
    df.to_parquet(tmp_path / "t.parquet")
    assert own.table_fields(tmp_path / "t.parquet") == ("logit", "image_id", "label", "attributes")
    splits, names = own.read_table(tmp_path / "t.parquet")
    assert names == ["big"] and splits["train"]["logit"].shape == (30, 5)
    assert np.array_equal(splits["test"]["attributes"][:, 0], x[30:, 0] > 0)
    np.save(tmp_path / "t.npy", x)
    splits, _ = own.read_table(tmp_path / "t.npy")
    assert {s: len(a["logit"]) for s, a in splits.items()} == {"train": 30, "test": 10}
    np.save(tmp_path / "bad.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"bad.npy: holds pickled"):
        own.read_table(tmp_path / "bad.npy")
    folder = make_images(tmp_path / "imgs", per_class=3)
    rows = ["path,label,split,red"] + [
        f"{c}/{i:03d}.png,{k},{'test' if i == 0 else 'train'},{k}"
        for k, c in enumerate(("circle", "square"))
        for i in range(3)
    ]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    assert own.image_fields(folder, tmp_path / "list.csv") == (
        "logit", "image_id", "label", "attributes", "image",
    )  # fmt: skip
    paths, labels, attrs, names, _, split = own.list_images(folder, tmp_path / "list.csv")
    assert names == ["red"] and attrs[:, 0].tolist() == [False] * 3 + [True] * 3
    assert split.tolist().count("test") == 2 and labels.tolist() == [0, 0, 0, 1, 1, 1]
    # Class names follow the label values, also past 9 (not "0", "1", "10", "2", ...).
    many = ["path,label"] + [f"circle/{k:03d}.png,{k}" for k in range(12)]  # listed, not read
    for k in range(3, 12):
        (folder / "circle" / f"{k:03d}.png").touch()  # listed files must exist
    (tmp_path / "many.csv").write_text("\n".join(many) + "\n")
    classes = own.list_images(folder, tmp_path / "many.csv")[4]
    assert classes == [str(k) for k in range(12)]


def test_table_file_run_is_named_after_it_and_tested_on_it_by_default(tmp_path):
    """train.py --dataset FILE: the run id carries the file's stem, the model keeps the file and
    its SHA-256, and test.py without --dataset tests that table."""
    import hashlib

    from faultkit import train_args

    table = make_table(tmp_path / "My-Blobs.npz")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run_dir = tmp_path / "run"
    args = train_args(run_dir, steps=4)
    # flat arrays are split by build_own.py; train.py reads `train`: give it split arrays
    with np.load(table) as d:
        np.savez(table, train=d["logit"][:300], test=d["logit"][300:])
    res = subprocess.run(
        [PY, "workflow/scripts/train.py", *args, "--dataset", str(table)],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["dataset"]["name"] == "my_blobs" and saved["dataset"]["file"] == str(table)
    assert saved["dataset"]["sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()
    out = tmp_path / "tc.csv"
    res = subprocess.run(
        [PY, "workflow/scripts/test.py", "--checkpoint", str(run_dir / "final.ckpt"),
         "--mode", "channel", "--out", str(out), "--config.eval.batch_sizes=(16,)",
         "--config.eval.topsim_ratios=(0.2,)"],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    rows = pd.read_csv(out)
    assert set(rows["dataset"]) == {"my_blobs"} and set(rows["run_id"]) == {
        "lg_rl-my_blobs-b32-p0.0-s0"  # the user defaults (B = 32), not debug's B = 8
    }


def test_auto_etl_tasks_follow_the_fields_and_source_picks_the_kind(tmp_path, data):
    """`etl.tasks.<name>: auto` → every task the data supports; `source:` is a table by its
    suffix, else an image folder (so `--config 'own_data={x: {source: ...}}'` can switch)."""
    table, images = data
    cfg = config(tmp_path, table, images)
    cfg["own_data"] = {"blobs": {"source": str(table)}, "pics": {"source": str(images)}}
    cfg["etl"]["tasks"] = {"blobs": "auto", "pics": "auto"}
    res = snakemake(cfg, tmp_path, "-n")
    out = res.stdout
    for task in ("discrimination", "discriminationdist", "classification", "attribute"):
        assert f"{task}-blobs-p0.5-sample" in out
    assert "reconstruction-blobs" not in out and "attribute-pics" not in out
    assert "reconstruction-pics-p0.5-sample" in out
    stats = out.split("Job stats:")[1]
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    assert jobs["etl"] == 16 and jobs["own_tfds"] == 2  # 4 tasks each × 2 games


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"train": X, "test": X, "label": Y},
            "flat arrays ['label'] mixed with per-split arrays ['test', 'train']",
        ),
        ({"logit": X, "labels": Y}, "array 'labels' is not a table field"),
        ({"train": X, "test": X, "valid_label": Y}, "array 'valid_label' has no features"),
        ({"train": X, "train_logit": X, "test": X}, "arrays 'train' and 'train_logit'"),
        ({"train": X, "test": X, "train_label": Y}, "splits hold different fields"),
        ({"logit": X, "attribute_names": np.array(["a"])}, "'attribute_names' without"),
        ({"valid": X, "test": X}, "needs a 'train' and a 'test' split"),
    ],
)
def test_npz_layouts_the_dag_cannot_trust_are_refused_by_their_keys(tmp_path, arrays, message):
    """table_fields (the dry run) and read_table (the build) read one layout: every array is
    used, or the file is refused naming it."""
    table = _npz(tmp_path / "t.npz", **arrays)
    for read in (
        own.table_fields,
        own.read_table,
        lambda t: own.build("t", tmp_path / "d", table=t),
    ):
        with pytest.raises(DataError, match=re.escape(message)) as err:
            read(table)
        assert str(table) in str(err.value)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"logit": X, "attributes": np.ones((20, 2)), "attribute_names": np.array(["a", "a"])},
            "array 'attribute_names': name 'a' appears twice",
        ),
        (
            {"logit": X, "attributes": np.ones((20, 2)), "attribute_names": np.array(["a", ""])},
            "array 'attribute_names': name '' is empty",
        ),
        (
            {"logit": X, "attributes": np.ones((20, 1)), "attribute_names": np.array([b"a"])},
            "array 'attribute_names' must be a 1-D array of strings",
        ),
        ({"logit": X, "label": np.r_[Y[:19], 10**12]}, "array 'label' has 1000000000000 in row 19"),
        ({"train": X, "test": X, "train_label": Y, "test_label": Y + 2**20}, "'test_label' has"),
        ({"train": X, "test": np.ones((20, 5))}, "different widths {'train': 4, 'test': 5}"),
    ],
)
def test_npz_values_are_checked_before_anything_is_built(tmp_path, arrays, message):
    table = _npz(tmp_path / "t.npz", **arrays)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        own.build("t", tmp_path / "d", table=table)
    assert str(table) in str(err.value)
    assert not (tmp_path / "d").exists()


def test_the_largest_label_is_accepted_and_sets_the_depth(tmp_path):
    """Sparse class ids up to 2**20 - 1 are class indices: the depth is the largest + 1."""
    table = _npz(tmp_path / "t.npz", logit=X, label=np.where(Y == 1, 2**20 - 1, 3))
    rec = json.loads((own.build("t", tmp_path / "d", table=table) / own.PROVENANCE).read_text())
    assert rec["label_depth"] == 2**20


@pytest.mark.parametrize(
    "column",
    [
        "lable",
        "Label",
        "labels",
        "label_2",
        "Split",
        "splits",
        "atr_x",
        "attr-x",
        "Attr_x",
        "attrx",
    ],
)
def test_parquet_columns_named_almost_label_split_or_attr_are_refused(tmp_path, column):
    """A mistyped `label`, `split` or `attr_` column is not taken as a feature (the label would
    leak into the features and the task vanish): refused by the dry run, naming the column."""
    table = _parquet(tmp_path / "t.parquet", **{column: Y})
    for read in (own.table_fields, lambda t: own.build("t", tmp_path / "d", table=t)):
        with pytest.raises(DataError, match=re.escape(f"column {column!r}")) as err:
            read(table)
        assert str(table) in str(err.value) and "did you mean" in str(err.value)
    assert not (tmp_path / "d").exists()


def test_parquet_feature_names_that_only_contain_label_are_features(tmp_path):
    table = _parquet(tmp_path / "t.parquet", feat_label_free=Y, x_12=Y, attn_0=Y, table=Y)
    assert own.table_fields(table) == ("logit", "image_id", "label", "attributes")
    assert own.read_table(table)[0]["train"]["logit"].shape[1] == 8


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"label": Y.astype(str)}, "column 'label' holds strings (large_string); labels are"),
        ({"label": Y + 0.5}, "column 'label' holds floats (double)"),
        ({"label": np.r_[Y[:7], -1, Y[8:]]}, "column 'label' has -1 in row 7"),
        ({"attr_big": np.r_[Y[:5], 2, Y[6:]]}, "column 'attr_big' has 2 in row 5; use 0 or 1"),
        ({"f2": np.r_[X[:3, 2], np.nan, X[4:, 2]]}, "NaN or infinite values (first in row 3)"),
        (
            {"Attractive": Y % 2},
            "column 'Attractive' looks like an attribute: did you mean 'attr_Attractive'?",
        ),
        ({"f2": ["a"] * 20}, "column 'f2' holds strings (large_string); feature columns"),
    ],
)
def test_parquet_values_are_named_by_column_and_row(tmp_path, columns, message):
    table = _parquet(tmp_path / "t.parquet", **columns)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        own.build("t", tmp_path / "d", table=table)
    assert str(table) in str(err.value)
    assert not (tmp_path / "d").exists()


def test_a_table_that_is_a_folder_says_so(tmp_path):
    with pytest.raises(DataError, match=f"^{tmp_path}: a folder, not a table file"):
        own.build("t", tmp_path / "d", table=tmp_path)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.5])
def test_a_test_fraction_outside_0_1_is_refused(tmp_path, fraction):
    table = tmp_path / "t.npz"
    np.savez(table, logit=np.ones((8, 4), np.float32))
    with pytest.raises(
        DataError, match=re.escape(f"test_fraction must be in (0, 1), got {fraction}")
    ):
        own.build("t", tmp_path / "d", table=table, test_fraction=fraction)
    assert not (tmp_path / "d").exists()


def test_file_list_encodings(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark: read as UTF-8. Another encoding is
    refused naming the file, not a traceback."""
    folder = make_images(tmp_path / "imgs", per_class=2)
    bom = tmp_path / "bom.csv"
    bom.write_bytes("path,label\ncircle/000.png,0\nsquare/000.png,1\n".encode("utf-8-sig"))
    assert own.image_fields(folder, bom) == ("logit", "image_id", "label", "image")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("path,label\ncircle/caf\xe9.png,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=f"^{latin}: not UTF-8 text"):
        own.image_fields(folder, latin)


def test_npz_label_and_attribute_values_are_named(tmp_path):
    for arrays, message in (
        ({"label": Y.astype(str)}, "array 'label' must be [N] = [20] integers, got strings"),
        ({"attributes": np.c_[Y, np.r_[Y[:4], 2, Y[5:]]], "attribute_names": np.array(["a", "b"])},
         "array 'attributes' column 1 ('b') has 2 in row 4; use 0 or 1"),
    ):  # fmt: skip
        with pytest.raises(DataError, match=re.escape(message)):
            own.read_table(_npz(tmp_path / "t.npz", logit=X, **arrays))


def test_missing_sources_say_where_they_were_looked_for(tmp_path, monkeypatch):
    """Relative paths start in the current directory (snakemake's); a suffix that is not a
    table's is not reported as a missing image folder."""
    make_images(tmp_path / "imgs", per_class=1)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataError,
        match=re.escape(f"list.csv: file list not found (looked for {tmp_path}/list.csv)"),
    ):
        own.image_fields("imgs", "list.csv")
    with pytest.raises(DataError, match=re.escape(f"(looked for {tmp_path}/imgz)")):
        own.image_fields(*own.source_of({"source": "imgz"})[1:])
    with pytest.raises(DataError, match=r"^t.parquett: not a table \(.npy, .npz, .parquet\)"):
        own.image_fields(*own.source_of({"source": "t.parquett"})[1:])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["path,label"], "no rows below the header"),
        (["Path,label", "circle/000.png,0"], "header: column 'Path': did you mean 'path'?"),
        (["path,Label", "circle/000.png,0"], "header: column 'Label': did you mean 'label'?"),
        (["path,lable", "circle/000.png,0"], "header: column 'lable': did you mean 'label'?"),
        (["path,Split", "circle/000.png,0"], "header: column 'Split': did you mean 'split'?"),
        (
            ["path,label", "circle/000.png,0", "circle/009.png,0"],
            "line 3, column 'path': no file /",  # ...imgs/circle/009.png, checked below
        ),
        (["path,label", "circle/000.png,-1"], "line 2, column 'label': '-1' is not an integer"),
        (["path,label", "circle/000.png,1000000000"], "line 2, column 'label': '1000000000'"),
        (["path,label", "circle/000.png,1e3"], "line 2, column 'label': '1e3'"),
        (["path,label,red", "circle/000.png,0,1", "square/000.png,1"], "line 3: 2 cells"),
        (["path,label", "circle/000.png,0,1"], "line 2: 3 cells; the header has 2 columns"),
        (["path,label,red", "circle/000.png,0,2"], "line 2, column 'red': '2'"),
        (["path,label,label", "circle/000.png,0,1"], "header: name 'label' appears twice"),
        (["path,label, red", "circle/000.png,0,1"], "header: name ' red' is empty or padded"),
        (["path,label,split", "circle/000.png,0,dev"], "line 2, column 'split': 'dev'"),
        (["path,label", ",0"], "line 2, column 'path': empty"),
        (
            [
                "path,label,split",
                "circle/000.png,0,train",
                "square/000.png,1,train",
                "./circle/000.png,0,test",
            ],
            "line 4, column 'path': './circle/000.png' is also on line 2",
        ),  # fmt: skip
    ],
)
def test_file_list_rows_are_checked_before_anything_is_built(tmp_path, rows, message):
    """The dry run (image_fields) and the build read the same checked rows; errors name the
    CSV file, the line and the column."""
    folder = make_images(tmp_path / "imgs", per_class=2)
    file_list = tmp_path / "list.csv"
    file_list.write_text("\n".join(rows) + "\n")
    for read in (
        lambda: own.image_fields(folder, file_list),
        lambda: own.build("p", tmp_path / "d", images=folder, file_list=file_list),
    ):
        with pytest.raises(DataError, match=re.escape(message)) as err:
            read()
        assert str(file_list) in str(err.value)
        assert "no file" not in message or f"{folder}/circle/009.png (paths" in str(err.value)
    assert not (tmp_path / "d").exists()
