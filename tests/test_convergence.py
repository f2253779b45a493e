"""The convergence study (docs/convergence.md): script, resume and report on a small table."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from noisy_emcom.report import convergence
from noisy_emcom.synthetic import clustered_features

ROOT = Path(__file__).resolve().parents[1]


def test_plateau_measures():
    steps = np.array([10, 20, 30, 40, 50])
    gain, step = convergence.plateau(steps, np.array([0.2, 0.5, 0.797, 0.8, 0.805]))
    assert gain == pytest.approx(0.805 - 0.8) and step == 30  # last fifth: from step 40
    gain, step = convergence.plateau(steps, np.array([0.2, 0.4, 0.6, 0.7, 0.8]))
    assert gain == pytest.approx(0.1) and step == 50  # still rising


@pytest.mark.slow
def test_study_runs_resumes_and_reports(tmp_path):
    x, _ = clustered_features(640, dim=16, n_clusters=32, seed=0)
    np.savez(tmp_path / "blobs.npz", train=x[:512], test=x[512:])
    study = yaml.safe_load((ROOT / "config/convergence.yaml").read_text())
    study.update(
        results=str(tmp_path / "study"),
        data_dir=str(tmp_path / "tfds"),
        dataset=str(tmp_path / "blobs.npz"),
        jobs=2,
        main_groups=["b8"],
        eval={"every": 100, "batch_sizes": [8, 16], "erasure_p": 0.5, "epochs": 1, "seed": 0},
        groups={
            "b8": {
                "games": ["nlg"],
                "seeds": [0, 1],
                "overrides": {"batch_size": 8, "training_steps": 200},
            },
            "original_target": {
                "games": ["lg_rl"],
                "seeds": [0],
                "overrides": {"batch_size": 8, "training_steps": 200, "speaker.target": "original"},
            },
        },
    )
    study["base"].update(steps_per_call=100, log_every=100)
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(study))
    cmd = [sys.executable, str(ROOT / "workflow/scripts/convergence.py"), "--config", str(config)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    out = tmp_path / "study"
    curves = pd.read_csv(out / "convergence.csv")
    # 2 evaluations × 2 K × (identity, erasure) per run; 3 runs.
    assert len(curves) == 3 * 2 * 2 * 2
    assert set(curves["step"]) == {100, 200} and curves["accuracy"].between(0, 1).all()
    table = (out / "convergence.md").read_text()
    assert "| b8 | NLG | 8 | identity | 2 | 200 |" in table
    assert (out / "convergence.png").stat().st_size > 0
    assert (out / "convergence_variants.png").stat().st_size > 0
    # A second call trains nothing and writes the same curves.
    before = (out / "b8" / "nlg-s1" / "curve.csv").read_bytes()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and "exit" not in res.stdout
    assert (out / "b8" / "nlg-s1" / "curve.csv").read_bytes() == before
