"""profiles/slurm against a real single-node SLURM (tests/slurm/cluster.sh: slurmctld, slurmd,
slurmdbd on MariaDB, munge), with only the settings a user sets (a layered site profile):
the quick configuration end to end through sbatch, then a training job cancelled with
`scancel` mid-run, noticed, submitted again and resumed from its checkpoint.

Installs Debian's SLURM where absent (root + apt-get); skipped, with the reason, elsewhere.
Every wait is bounded: a hang is a failure."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--nolock", "--profile", "profiles/slurm"]
RUN = "lg_s-shapes_logits-b8-p0.0-s1"  # the run cancelled and resumed
RUN_LOGS = "rule_train/lg_s_shapes_logits_8_0.0_1"  # its SLURM logs

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]


def unavailable() -> str:
    """Why no cluster can be started here ('' when one can)."""
    have = all(shutil.which(d) for d in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd"))
    if not have and (os.geteuid() != 0 or not shutil.which("apt-get")):
        return "SLURM is not installed and cannot be (needs root and apt-get)"
    if os.path.exists("/etc/slurm/slurm.conf"):
        return "/etc/slurm/slurm.conf exists: a real SLURM node; the test cluster would clash"
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
        return "a munged is already running"
    return ""


@pytest.fixture(scope="module")
def cluster():
    """(environment for SLURM clients, folder for results) of a running test cluster."""
    if reason := unavailable():
        pytest.skip(reason)
    # Not under pytest's basetemp, which other pytest sessions prune while this one runs.
    d = Path(tempfile.mkdtemp(prefix="emcom-slurm-"))
    try:
        start = subprocess.run(
            [CLUSTER, "start", d / "cluster"], capture_output=True, text=True, timeout=1500
        )
        assert start.returncode == 0, start.stdout + start.stderr
        conf = re.search(r"SLURM_CONF=(\S+)", start.stdout)[1]
        path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
        yield {**os.environ, "SLURM_CONF": conf, "PATH": path}, d
    finally:
        subprocess.run([CLUSTER, "stop", d / "cluster"], timeout=300)
        shutil.rmtree(d, ignore_errors=True)


def site_profile(d: Path, results: Path, gpu_request=None) -> str:
    """The settings the README asks a user to make, for this cluster."""
    gpu = {"slurm_partition": "emcom", **(gpu_request or {"gpu": 1})}
    profile = {
        "default-resources": {"slurm_account": "emcom", "slurm_partition": "emcom"},
        "set-resources": {rule: gpu for rule in ("train", "test", "etl", "byol_features")},
        "cores": os.cpu_count(),
        "slurm-logdir": str(results / "slurm-logs"),
    }
    (d / "site").mkdir(exist_ok=True)
    (d / "site" / "config.yaml").write_text(yaml.safe_dump(profile))
    return str(d / "site")


def config_file(d: Path, results: Path, name: str, **train) -> str:
    cfg = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    cfg |= {"results": str(results), "data_dir": str(results / "tfds")}
    cfg["train"] |= train
    (d / name).write_text(yaml.safe_dump(cfg))
    return str(d / name)


def sacct(env, *fields) -> list[list[str]]:
    res = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "-S", "now-1days", "-o", ",".join(fields)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    return [line.split("|") for line in res.stdout.splitlines()]


def snakemake(env, *args, timeout):
    return subprocess.run(
        [*SNAKEMAKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def slurm_logs(results: Path, under: str = "") -> dict[int, Path]:
    """SLURM job id → its log (results/slurm-logs/<rule or group>/<wildcards>/<id>.log)."""
    return {int(p.stem): p for p in (results / "slurm-logs" / under).rglob("*.log")}


def test_quick_config_through_sbatch(cluster):
    env, d = cluster
    results = d / "results"
    args = ["--profile", site_profile(d, results), "--configfile", config_file(d, results, "q")]
    t0 = time.monotonic()
    res = snakemake(env, *args, timeout=1800)
    wall = time.monotonic() - t0
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    print(f"quick config through SLURM: {wall:.0f} s")

    # Every result: a second invocation has nothing to do.
    again = snakemake(env, *args, "-n", timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # Every job went through sbatch: one log per SLURM job id, each COMPLETED in accounting,
    # under the account and partition of the site profile.
    logs = slurm_logs(results)
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", res.stdout + res.stderr)
    assert sorted(map(int, submitted)) == sorted(logs)
    rows = {int(r[0]): r[1:] for r in sacct(env, "JobIDRaw", "State", "Account", "Partition",
                                            "ReqTRES")}  # fmt: skip
    for job in logs:
        assert rows[job][:3] == ["COMPLETED", "emcom", "emcom"], (job, rows.get(job))
    rules = {p.relative_to(results / "slurm-logs").parts[0] for p in logs.values()}
    assert rules == {
        "rule_shapes_raw", "rule_shapes_encoder", "rule_shapes_features", "rule_shapes_tfds",
        "rule_train", "group_test_test", "group_etl_etl", "rule_report",
    }  # fmt: skip
    print(f"SLURM jobs: {len(logs)}")
    # CPUs follow each rule's threads; GPU rules ask for a GPU through the executor.
    tres = {p.relative_to(results / "slurm-logs").parts[0]: rows[j][3] for j, p in logs.items()}
    assert "cpu=2," in tres["rule_shapes_encoder"] and "gres/gpu" not in tres["rule_report"]
    assert "cpu=1," in tres["rule_train"] and "gres/gpu=1" in tres["rule_train"]
    assert "gres/gpu" in tres["group_test_test"] and "gres/gpu" in tres["group_etl_etl"]
    # Grouped short jobs: 3 test jobs in one SLURM job, 9 ETL jobs in 3.
    assert len(slurm_logs(results, "group_test_test")) == 1
    assert len(slurm_logs(results, "group_etl_etl")) == 3
    assert (results / "report" / "manifest.json").exists()


def test_cancelled_training_job_resumes(cluster):
    """`scancel` of a training job that has checkpointed: Snakemake notices, submits it again,
    and the new job resumes from the checkpoint instead of step 0."""
    env, d = cluster
    results = d / "results"
    config = config_file(
        d, results, "long", games=["lg_s"], seeds=[1],
        overrides={**yaml.safe_load((ROOT / "config/quick.yaml").read_text())["train"]
                   ["overrides"], "training_steps": 40_000, "steps_per_call": 100,
                   "log_every": 500, "checkpoint_every": 500},
    )  # fmt: skip
    run_dir = results / "runs" / RUN
    # The GPU request in its other form this time: --gres instead of --gpus.
    site = site_profile(d, results, {"gres": "gpu:1"})
    args = [f"{run_dir}/final.ckpt", "--profile", site, "--configfile", config]
    out = open(d / "cancel.log", "w")
    proc = subprocess.Popen([*SNAKEMAKE, *args], cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 600
        while not list((run_dir / "checkpoints").glob("step_*.ckpt")):
            assert proc.poll() is None, (d / "cancel.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "no checkpoint within 10 min"
            time.sleep(1)
        (first,) = slurm_logs(results, RUN_LOGS)
        subprocess.run(["scancel", str(first)], env=env, timeout=60, check=True)
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()
    log = (d / "cancel.log").read_text()
    assert proc.returncode == 0, log[-6000:]
    jobs = sorted(slurm_logs(results, RUN_LOGS))
    assert len(jobs) == 2 and jobs[0] == first, jobs
    rows = {int(r[0]): r[1:] for r in sacct(env, "JobIDRaw", "State", "ReqTRES")}
    assert rows[first][0].startswith("CANCELLED") and rows[jobs[1]][0] == "COMPLETED"
    assert all("gres/gpu=1" in rows[j][1] for j in jobs)
    assert f"SLURM-job '{first}' failed" in log
    resumed = re.search(r"resumed from step (\d+)", (results / "logs/train" / f"{RUN}.log")
                        .read_text())  # fmt: skip
    assert resumed and int(resumed[1]) > 0
    print(f"resumed from step {resumed[1]} of 40000")
