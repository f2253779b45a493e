"""The Snakemake workflow: lint, config validation, the paper grid's plan, conda envs, and the
quick configuration end to end (real data build, training, tests, ETL and report)."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--nolock"]


def snakemake(*args, check=True, timeout=1800):
    env_path = f"{Path(sys.executable).parent}:{__import__('os').environ['PATH']}"
    res = subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "PATH": env_path},
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"snakemake {args} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
        )
    return res


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_lint_is_clean():
    res = snakemake("--lint", "--cores", "1")
    assert "Congratulations" in res.stdout + res.stderr


def test_paper_grid_plan(tmp_path):
    res = snakemake("-n", "-F", "--cores", "1", "--configfile", "config/paper.yaml")
    jobs = job_counts(res.stdout)
    # 3 games x 2 datasets x 4 batch sizes x 3 seeds (NLG at p_max = 0.5 only).
    assert jobs["train"] == 72
    assert jobs["test"] == 72  # one job runs the four tests and the measures of a run
    # ETL (train and test in one job): ImageNet runs 2 tasks, CelebA runs 4 tasks, each at
    # noise 0 and 0.5.
    assert jobs["etl"] == 36 * 2 * 2 + 36 * 4 * 2
    # The published features by default: one conversion per TFDS dataset, no extraction.
    assert jobs["convert_published"] == 4 and "byol_features" not in jobs
    assert jobs["report"] == 1
    raw = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    for family in ("celeba", "imagenet"):
        raw["data"][family]["source"] = "raw"
    path = tmp_path / "paper_raw.yaml"
    path.write_text(yaml.safe_dump(raw))
    jobs = job_counts(snakemake("-n", "-F", "--cores", "1", "--configfile", str(path)).stdout)
    assert jobs["byol_features"] == 2 and "convert_published" not in jobs


def test_configfile_replaces_the_default_config():
    """`--configfile` replaces config/config.yaml rather than merging into it: the quick plan
    has none of the default's overrides (e.g. its ETL listener size or reconstruction steps)."""
    res = snakemake("-n", "-p", "-F", "--cores", "1", "--configfile", "config/quick.yaml")
    etl_commands = [line for line in res.stdout.splitlines() if "etl_train.py" in line]
    assert etl_commands and all("--config.etl.training_steps=10 " in c for c in etl_commands)
    assert not any("listener.lstm_size" in c for c in etl_commands)
    recon = [c for c in etl_commands if "reconstruction" in c]
    assert recon and all("--config.etl.batch_size=8 " in c for c in recon)


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda c: c["train"].__setitem__("nlg_noise", [1.5]), "nlg_noise"),
        (lambda c: c["train"].__setitem__("batch_sizes", [0]), "batch_sizes"),
        (lambda c: c["train"].__setitem__("games", ["lg_x"]), "games"),
        (lambda c: c["train"].__setitem__("datasets", ["mnist"]), "datasets"),
    ],
)
def test_bad_config_is_refused_before_any_job(tmp_path, edit, field):
    cfg = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = snakemake("--cores", "1", "--configfile", str(path), check=False)
    assert res.returncode != 0
    assert field in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


def pinned(requirement: str) -> tuple[str, str]:
    name, _, version = requirement.partition("==")
    return re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-"), version.strip()


def test_conda_envs_parse_and_agree_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(pinned(r) for r in project["dependencies"])
    tf = dict(pinned(r) for r in project["optional-dependencies"]["tf"])
    for env_file in ("envs/cpu.yaml", "envs/cuda.yaml", "envs/convert.yaml"):
        env = yaml.safe_load((ROOT / env_file).read_text())
        assert "python=3.11" in env["dependencies"]
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        env_pins = dict(pinned(r) for r in pip)
        known = {**pins, **tf} if env_file == "envs/convert.yaml" else pins
        for name, version in env_pins.items():
            assert known.get(name) == version, (env_file, name, version, known.get(name))
        if env_file == "envs/convert.yaml":
            assert set(tf) <= set(env_pins)
        # Everything the jobs import is there (snakemake itself runs outside the job env).
        missing = set(pins) - set(env_pins) - {"snakemake", "jaxlib"}
        assert not missing, (env_file, missing)


@pytest.mark.slow
@pytest.mark.xdist_group("workflow")
def test_quick_config_end_to_end(tmp_path):
    """Also: paths reach the shells quoted. The results folder's name has a space, a quote and
    a `;` that would run `touch PWNED` if any rule pasted it unquoted. The step counts are
    given again by `--config`, which passes nested values as text ('20'): the jobs' resources
    are computed from the resolved configs, not from the text."""
    results = tmp_path / "out dir; touch PWNED; it's"
    cfg = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    cfg.update(results=str(results), data_dir=f"{results}/tf ds")
    config = tmp_path / "quick.yaml"
    config.write_text(yaml.safe_dump(cfg))
    overrides = ["--configfile", str(config), "--config",
                 "train={overrides: {training_steps: 20}}",
                 "etl={overrides: {etl.training_steps: 10}}"]  # fmt: skip
    snakemake("--cores", "2", *overrides)
    assert not (ROOT / "PWNED").exists() and not list(tmp_path.rglob("PWNED"))
    assert (results / "tf ds" / "shapes_logits" / "2.0.0" / "dataset_info.json").is_file()
    report = results / "report"
    manifest = (report / "manifest.json").read_text()
    for name in ("table_channel", "table_message", "table_input", "table_topsim", "table_etl",
                 "table_redundancy", "claims"):  # fmt: skip
        assert (report / "tables" / f"{name}.md").stat().st_size > 0, name
        assert name in manifest
    for name in ("fig_accuracy_vs_p", "fig_accuracy_vs_erased", "fig_learning_curves",
                 "fig_etl", "fig_erasure_sensitivity"):  # fmt: skip
        assert (report / "figures" / f"{name}.png").stat().st_size > 0, name
    page = (report / "results.md").read_text()  # the source of docs/results.md
    assert "## Channel test" in page and "## Claims of the paper" in page
    assert "results.md" in manifest
    # Channel test: 3 runs x 1 K x 7 channel settings x 1 decoding, no duplicate keys.
    channel = pd.read_csv(report / "tables" / "testchannel.csv")
    assert len(channel) == 3 * 7
    assert set(channel["game"]) == {"lg_s", "lg_rl", "nlg"}
    assert set(channel["eval_batch_size"]) == {16}
    assert not channel.duplicated(["run_id", "eval_batch_size", "channel", "channel_p"]).any()
    message = pd.read_csv(report / "tables" / "testmessage.csv")
    assert len(message) == 3 * (1 + 10 + 10)  # n = 0, 1, 2 erased positions
    etl = pd.read_csv(report / "tables" / "etl.csv")
    assert set(etl["task"]) == {"discriminationdist", "attribute", "reconstruction"}
    assert (results / "runs" / "nlg-shapes_logits-b8-p0.5-s0" / "etl"
            / "reconstruction-shapes-p0.5-sample" / "reconstructions.png").exists()  # fmt: skip
    # Every long step reports its progress in its job log, one line per unit of work.
    logs = results / "logs"
    expect = {
        "train/nlg-shapes_logits-b8-p0.5-s0.log": "train nlg-shapes_logits-b8-p0.5-s0: 20/20 steps",
        "test/nlg-shapes_logits-b8-p0.5-s0.log": "testchannel: 7/7 settings",
    }
    for rel, fragment in expect.items():
        assert fragment in (logs / rel).read_text(), rel
    etl_logs = "\n".join(p.read_text() for p in (logs / "etl").rglob("*.log"))
    assert "etl attribute shapes_noimg p0.5: 10/10 steps" in etl_logs
    data_logs = "\n".join(p.read_text() for p in (logs / "data").rglob("*.log"))
    for fragment in ("shapes encoder training:", "shapes encoding:", "rendering:", "TFDS"):
        assert fragment in data_logs, fragment
    # A second run has nothing to do.
    again = snakemake("-n", "--cores", "1", *overrides)
    assert "Nothing to be done" in again.stdout + again.stderr
