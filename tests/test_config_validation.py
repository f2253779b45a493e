"""Config validation: bad Snakemake configs are refused by `snakemake` before any job starts,
naming the config file's key; bad `--config.x=...` settings are refused by the scripts naming
the field; nothing already computed changes. Good configs still pass."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate as schema_validate

from noisy_emcom.configs import ConfigError
from noisy_emcom.configs import workflow as config_check

ROOT = Path(__file__).resolve().parents[1]
DELETE = object()

# (config-file key path, bad value, fragment the error must contain); edits of quick.yaml.
BAD_CONFIGS = [
    # train.overrides
    ("train.overrides.training_steps", -5, "train.overrides.training_steps"),
    ("train.overrides.vocab_size", 1, "train.overrides.vocab_size"),
    ("train.overrides.vocab_size", 20.5, "train.overrides.vocab_size"),
    ("train.overrides.vocab_size", 100_000_000, "train.overrides.vocab_size"),
    ("train.overrides.length", 0, "train.overrides.length"),
    ("train.overrides.speaker.optimizer.learning_rate", "fast", "learning_rate"),
    ("train.overrides.speaker.lstm_sise", 16, "did you mean 'speaker.lstm_size'"),
    ("train.overrides.steps_per_call", 0, "train.overrides.steps_per_call"),
    ("train.overrides.log_every", 0, "train.overrides.log_every"),
    ("train.overrides.log_every", 7, "train.overrides.log_every"),
    ("train.overrides.channel.ramp_fraction", 1.5, "train.overrides.channel.ramp_fraction"),
    ("train.overrides.channel.p_max", 0.25, "train.overrides.channel.p_max: set by train.nlg"),
    ("train.overrides.dataset.name", "imagenet", "set by train.datasets"),
    ("train.overrides.channel.type", "gaussian", "train.overrides.channel.type"),
    ("train.overrides.speaker.lstm_size", 100_000, "train.overrides.speaker.lstm_size"),
    ("train.overrides.batch_size", 32, "train.overrides.batch_size"),
    ("train.overrides.listener.temperature", 0, "train.overrides.listener.temperature"),
    ("train.overrides.speaker", 3, "train.overrides.speaker"),
    ("train.overrides.training_steps", True, "train.overrides.training_steps"),
    ("train.overrides.speaker.optimizer.name", "sgd", "speaker.optimizer.name"),
    ("train.overrides.listener.vocab_size", 0, "train.overrides.listener.vocab_size"),
    ("train.overrides.dataset.data_dir", "/elsewhere", "dataset.data_dir: set by data_dir"),
    ("train.overrides.dataset.file", "/tmp/t.npz", "dataset.file: set by train.datasets"),
    ("train.batch_sizes", [1024], "train.batch_sizes"),
    ("train.nlg_noise", [0.00001], "train.nlg_noise: 1e-05 is written 1e-05 in paths"),
    ("train.seeds", [-1], "seeds"),
    ("train.games", ["lg_x"], "games"),
    # eval_overrides
    ("eval_overrides.eval.batch_sizes", [0], "eval_overrides.eval.batch_sizes"),
    ("eval_overrides.eval.decodings", ["beam"], "eval_overrides.eval.decodings"),
    ("eval_overrides.eval.mask_counts", [0, 11], "eval_overrides.eval.mask_counts"),
    ("eval_overrides.eval.epoch", 1, "did you mean 'eval.epochs'"),
    ("eval_overrides.eval.batch_sizes", [512], "eval_overrides.eval.batch_sizes"),
    ("eval_overrides.batch_size", 4, "eval_overrides.batch_size"),
    ("eval_overrides.eval.unknown_token_policy", "drop", "eval.unknown_token_policy"),
    ("eval_overrides.eval.topsim_ratios", [0.2, 0.2], "eval_overrides.eval.topsim_ratios"),
    ("eval_overrides.eval.erasure_ps", [1.5], "eval_overrides.eval.erasure_ps"),
    ("eval_overrides.eval.epochs", 0, "eval_overrides.eval.epochs"),
    ("eval_overrides.eval.checkpoint", "final", "unknown config field 'eval.checkpoint'"),
    # etl
    ("etl.overrides.etl.batch_size", 0, "etl.overrides.etl.batch_size"),
    ("etl.overrides.etl.batch_sise", 16, "did you mean 'etl.batch_size'"),
    ("etl.overrides.etl.log_every", 7, "etl.overrides.etl.log_every"),
    ("etl.overrides.etl.steps_per_call", 0, "etl.overrides.etl.steps_per_call"),
    ("etl.overrides.etl.training_steps", 0, "etl.overrides.etl.training_steps"),
    ("etl.overrides.etl.recon_channels", [64, 32], "etl.recon_latent"),
    ("etl.overrides.listener.lstm_size", 0, "etl.overrides.listener.lstm_size"),
    ("etl.overrides.etl.decoding", "greedy", "etl.overrides.etl.decoding"),
    ("etl.task_overrides.attribute.etl.noise", 0.0, "attribute.etl.noise: set by etl.noise"),
    ("etl.tasks.shapes_logits", ["attribute"], "etl.tasks.shapes_logits"),
    ("etl.tasks.celeba_noimg", ["classification"], "etl.tasks.celeba_noimg: no run is trained"),
    ("etl.noise", [0.00001], "etl.noise: 1e-05 is written 1e-05 in paths"),
    ("etl.overrides.dataset.data_dir", "/elsewhere", "dataset.data_dir: set by data_dir"),
    ("etl.task_overrides.reconstruction.etl.batch_size", 1000, "reconstruction.etl.batch_size"),
    ("etl.task_overrides.attribute.etl.optimizer.name", "sgd", "attribute.etl.optimizer.name"),
    # the rest of the file
    ("own_data.debug", {"source": "t.npy"}, "own_data.debug: dataset name 'debug' is reserved"),
    ("train", DELETE, "'train' is a required property"),
    ("results", "out{x}", "results"),
    ("data.shapes.num_train", 0, "num_train"),
    ("data.shapes.encoder.batch_size", 1024, "data.shapes.encoder.batch_size"),
    ("data.shapes.encoder.width", 100_000, "width"),
]
IDS = [f"{i:02d}-{key}" for i, (key, _, _) in enumerate(BAD_CONFIGS)]
# Keys whose dots are part of an override's name: split the config path only up to them.
SECTIONS = ("train.overrides", "eval_overrides", "etl.overrides", "etl.task_overrides")


def edited(key: str, value):
    """quick.yaml with `key` (a config-file path; override names keep their dots) set."""
    cfg = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    section = next((s for s in SECTIONS if key.startswith(s + ".")), None)
    if section == "etl.task_overrides":
        task, _, name = key[len(section) + 1 :].partition(".")
        parts = [*section.split("."), task, name]
    elif section:
        parts = [*section.split("."), key[len(section) + 1 :]]
    else:
        parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return cfg


def check_in_process(cfg: dict, tmp_path: Path) -> None:
    """The Snakefile's checks in this process: the schema, then every job's config."""
    schema_validate(cfg, str(ROOT / "config/schema.yaml"))
    config_check.check(cfg, lambda dataset: str(tmp_path / "absent" / dataset))


@pytest.mark.parametrize("key,value,fragment", BAD_CONFIGS, ids=IDS)
def test_bad_config_is_refused_in_process(tmp_path, key, value, fragment):
    with pytest.raises(Exception, match=fragment):
        check_in_process(edited(key, value), tmp_path)


@pytest.mark.parametrize("name", ["config.yaml", "quick.yaml", "paper.yaml"])
def test_good_configs_pass(tmp_path, name):
    check_in_process(yaml.safe_load((ROOT / "config" / name).read_text()), tmp_path)


def snakemake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--nolock", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def results_with_a_finished_file(tmp_path: Path) -> tuple[Path, dict]:
    results = tmp_path / "results"
    done = results / "runs" / "lg_s-shapes_logits-b8-p0.0-s0" / "final.ckpt"
    done.parent.mkdir(parents=True)
    done.write_bytes(b"an earlier result")
    return results, snapshot(results)


def snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def write_config(tmp_path: Path, cfg: dict, results: Path) -> Path:
    cfg.setdefault("results", str(results))
    cfg["data_dir"] = str(results / "tfds")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("key,value,fragment", BAD_CONFIGS, ids=IDS)
def test_bad_config_is_refused_by_snakemake_dry_run(tmp_path, key, value, fragment):
    results, before = results_with_a_finished_file(tmp_path)
    cfg = edited(key, value)
    if key != "results":
        cfg["results"] = str(results)
    res = snakemake("-n", "--cores", "1", "--configfile", str(write_config(tmp_path, cfg, results)))
    out = res.stdout + res.stderr
    assert res.returncode != 0 and fragment in out, out[-3000:]
    assert "Traceback" not in out
    assert snapshot(results) == before


@pytest.mark.slow
@pytest.mark.parametrize("key,value", [(k, v) for k, v, _ in BAD_CONFIGS[::15]])
def test_bad_config_runs_no_job(tmp_path, key, value):
    """A real (not dry) run of a bad config: refused while the DAG is built, nothing written."""
    results, before = results_with_a_finished_file(tmp_path)
    cfg = edited(key, value)
    cfg["results"] = str(results)
    res = snakemake("--cores", "1", "--configfile", str(write_config(tmp_path, cfg, results)))
    assert res.returncode != 0
    assert "error in config" in res.stderr and str(tmp_path / "bad.yaml") in res.stderr
    assert snapshot(results) == before


# ---------------------------------------------------------------------------------------------
# The scripts: `--config.x=...` settings.


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "workflow/scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


TINY = [
    "--config.speaker.lstm_size=8",
    "--config.listener.lstm_size=8",
    "--config.listener.hidden=8",
    "--config.eval.batch_sizes=(8,)",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run of the debug preset (one step)."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    argv = ["--config=lg_rlrl:debug", *TINY, "--run-dir", str(run_dir), "--no-progress"]
    assert script("train")(argv) == 0
    return run_dir


BAD_TRAIN = [
    ("training_steps=-5", "training_steps"),
    ("vocab_size=1", "vocab_size"),
    ("vocab_size=20.5", "vocab_size"),
    ("vocab_size=100000000", "vocab_size"),
    ("length=0", "length"),
    ("speaker.optimizer.learning_rate=fast", "speaker.optimizer.learning_rate"),
    ("speaker.optimizer.learning_rate=nan", "speaker.optimizer.learning_rate"),
    ("speaker.lstm_sise=8", "did you mean 'speaker.lstm_size'"),
    ("steps_per_call=0", "steps_per_call"),
    ("log_every=0", "log_every"),
    ("checkpoint_every=3", "checkpoint_every"),  # not a multiple of steps_per_call (2)
    ("batch_size=1", "batch_size"),
    ("channel.type=gaussian", "channel.type"),
    ("eval.batch_sizes=__import__('os').system('touch PWNED')", "eval.batch_sizes"),
    ("random_seed=-1", "random_seed"),
]
BAD_TEST = [
    ("eval.batch_sizes=(0,)", "eval.batch_sizes"),
    ("eval.decodings=('beam',)", "eval.decodings"),
    ("eval.mask_counts=(0, 11)", "eval.mask_counts"),
    ("eval.epoch=1", "did you mean 'eval.epochs'"),
    ("eval.epochs=0", "eval.epochs"),
    ("eval.topsim_ratios=(0.2, 0.2)", "eval.topsim_ratios"),
    ("eval.listener_views=('both',)", "eval.listener_views"),
    ("batch_size=4", "only eval"),
    ("eval.batch_sizes=__import__('os').system('touch PWNED')", "eval.batch_sizes"),
]
BAD_ETL = [
    ("etl.batch_size=0", "etl.batch_size"),
    ("etl.batch_sise=8", "did you mean 'etl.batch_size'"),
    ("etl.log_every=7", "etl.log_every"),  # not a multiple of etl.steps_per_call (5)
    ("etl.steps_per_call=0", "etl.steps_per_call"),
    ("etl.optimizer.name=sgd", "etl.optimizer.name"),
    ("etl.noise=1.5", "etl.noise"),
    ("etl.decoding=beam", "etl.decoding"),
    ("etl.recon_channels=(64, 32)", "etl.recon_latent"),
    ("listener.lstm_size=100000", "listener.lstm_size"),
]


@pytest.mark.parametrize("setting,fragment", BAD_TRAIN)
def test_train_script_refuses_bad_setting(tmp_path, setting, fragment):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "train_log.csv").write_text("an earlier log\n")
    argv = ["--config=lg_rlrl:debug", "--config.training_steps=4", "--config.steps_per_call=2",
            "--config.log_every=2", "--config.checkpoint_every=2", f"--config.{setting}",
            "--run-dir", str(run_dir), "--no-progress"]  # fmt: skip
    with pytest.raises(SystemExit, match=fragment):
        script("train")(argv)
    assert [p.name for p in run_dir.iterdir()] == ["train_log.csv"]
    assert (run_dir / "train_log.csv").read_text() == "an earlier log\n"
    assert not (ROOT / "PWNED").exists() and not (tmp_path / "PWNED").exists()


@pytest.mark.slow
@pytest.mark.parametrize("setting,fragment", BAD_TEST)
def test_test_script_refuses_bad_setting(tmp_path, trained, setting, fragment):
    before = snapshot(trained)
    out = tmp_path / "testchannel.csv"
    out.write_text("an earlier table\n")
    argv = ["--checkpoint", str(trained / "final.ckpt"), "--mode", "channel", "--out", str(out),
            f"--config.{setting}"]  # fmt: skip
    with pytest.raises(SystemExit, match=fragment):
        script("test")(argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["testchannel.csv"]
    assert out.read_text() == "an earlier table\n" and snapshot(trained) == before
    assert not (ROOT / "PWNED").exists()


def test_an_output_that_is_not_csv_is_refused_before_any_work(tmp_path, trained, capsys):
    """test.py writes each table only after its test; a bad second --out must not cost the
    first test's work, nor overwrite it: refused while the arguments are read."""
    first = tmp_path / "testmessage.csv"
    first.write_text("an earlier table\n")
    argv = ["--checkpoint", str(trained / "final.ckpt"), "--mode", "message", "--out",
            str(first), "--mode", "channel", "--out", str(tmp_path / "c1")]  # fmt: skip
    with pytest.raises(SystemExit):
        script("test")(argv)
    assert f"--out must end in .csv (the Parquet twin is written beside it): {tmp_path}/c1" in (
        capsys.readouterr().err
    )
    assert [p.name for p in tmp_path.iterdir()] == ["testmessage.csv"]
    assert first.read_text() == "an earlier table\n"
    argv = ["--checkpoint", str(tmp_path / "final.ckpt"), "--config=etl:debug_classification_0.0",
            "--out-dir", str(tmp_path / "etl"), "--results", str(tmp_path / "r")]  # fmt: skip
    with pytest.raises(SystemExit):
        script("etl_train")(argv)
    assert f"--results must end in .csv: {tmp_path}/r" in capsys.readouterr().err
    assert not (tmp_path / "etl").exists()


@pytest.mark.parametrize("setting,fragment", BAD_ETL)
def test_etl_script_refuses_bad_setting(tmp_path, setting, fragment):
    """Refused before the speaker checkpoint (absent here) is read."""
    out_dir = tmp_path / "etl"
    out_dir.mkdir()
    (out_dir / "curve.csv").write_text("an earlier curve\n")
    argv = ["--checkpoint", str(tmp_path / "final.ckpt"), "--config=etl:debug_classification_0.0",
            "--config.etl.training_steps=10", "--config.etl.steps_per_call=5",
            f"--config.{setting}", "--out-dir", str(out_dir), "--no-progress"]  # fmt: skip
    with pytest.raises(SystemExit, match=fragment):
        script("etl_train")(argv)
    assert [p.name for p in out_dir.iterdir()] == ["curve.csv"]
    assert (out_dir / "curve.csv").read_text() == "an earlier curve\n"


def test_config_error_names_the_field():
    from noisy_emcom import configs

    with pytest.raises(ConfigError) as err:
        configs.get_config("lg_rlrl", "debug", {"speaker.lstm_sise": 8})
    assert err.value.field == "speaker.lstm_sise"
    # Still a KeyError / ValueError for callers that catch those.
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)


def test_a_field_an_older_version_saved_is_dropped_at_test_time():
    """Checkpoints of older versions carry `eval.checkpoint`, which nothing read: the tests
    take them, and an override of that field is refused as unknown."""
    from noisy_emcom import configs

    saved = configs.get_config("lg_rlrl", "debug", {})
    saved.eval.checkpoint = "final"
    configs.apply_eval_overrides(saved, {"eval.epochs": 2})
    assert "checkpoint" not in saved.eval and saved.eval.epochs == 2
    with pytest.raises(ConfigError, match="unknown config field 'eval.checkpoint'"):
        configs.apply_eval_overrides(saved, {"eval.checkpoint": "final"})


def fake_dataset(data_dir: Path, tfds_name: str, sizes: dict) -> None:
    """A dataset_info.json as TFDS writes it (split sizes in `shardLengths`)."""
    info = data_dir / tfds_name / "2.0.0" / "dataset_info.json"
    info.parent.mkdir(parents=True)
    splits = [{"name": s, "shardLengths": [str(n)]} for s, n in sizes.items()]
    info.write_text(__import__("json").dumps({"name": tfds_name, "splits": splits}))


def prebuilt_config(tmp_path: Path) -> dict:
    """quick.yaml on a prebuilt shapes dataset of 100 train / 20 test examples."""
    cfg = edited("data.shapes.source", "prebuilt")
    cfg["results"], cfg["data_dir"] = str(tmp_path / "results"), str(tmp_path / "tfds")
    for name in ("shapes_logits", "shapes_noimg", "shapes"):
        fake_dataset(tmp_path / "tfds", name, {"train": 100, "test": 20})
    return cfg


def test_split_sizes_come_from_dataset_info(tmp_path):
    cfg = prebuilt_config(tmp_path)
    cfg["eval_overrides"]["eval.batch_sizes"] = [16]
    cfg["etl"]["overrides"]["etl.batch_size"] = 16
    check_in_process(cfg, tmp_path)  # everything fits
    marker = lambda d: str(tmp_path / "tfds" / d / "2.0.0" / "dataset_info.json")  # noqa: E731
    assert config_check.split_sizes(cfg, "shapes_noimg", marker) == {"train": 100, "test": 20}
    for section, key, value, fragment in [
        ("train", "batch_sizes", [128], "train.batch_sizes: 128 exceeds the 100 train examples"),
        ("eval_overrides", "eval.batch_sizes", [32], "32 exceeds the 20 test examples"),
        ("etl", "overrides", {"etl.batch_size": 32}, "etl.overrides.etl.batch_size: 32 exceeds"),
    ]:
        bad = yaml.safe_load(yaml.safe_dump(cfg))
        bad[section][key] = value
        with pytest.raises(ConfigError, match=fragment):
            config_check.check(bad, marker)


@pytest.mark.slow
def test_snakemake_reads_split_sizes_of_an_existing_dataset(tmp_path):
    cfg = prebuilt_config(tmp_path)
    cfg["train"]["batch_sizes"] = [128]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = snakemake("-n", "--cores", "1", "--configfile", str(path))
    assert res.returncode != 0
    assert "train.batch_sizes: 128 exceeds the 100 train examples of shapes_logits" in res.stderr
