#!/usr/bin/env python
"""Training time of a pipeline config's grid from a `make bench` measurement
(docs/performance.md#the-papers-grid).

    python bench/grid_cost.py results/bench/train_throughput.json [--configfile config/paper.yaml]

Every training run of the config's grid (`train`: datasets × games × noise × batch sizes ×
seeds) takes `training_steps` / (the bench's median steps/s for its game and B). Printed per
(game, B): runs, their steps, steps/s and hours; then the total, on the bench's device.
Training only: tests, ETL and the data build are not counted. A run whose step is not the
one benched (other network sizes, another feature width than `--dim`) is an error naming the
run, since the bench's speed does not apply to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import jsonschema
import yaml
from train_throughput import step_flops  # this script's folder

from noisy_emcom import configs
from noisy_emcom.configs import workflow
from noisy_emcom.configs.validate import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def load_config(path: Path) -> dict:
    """The pipeline config file, checked against config/schema.yaml (as the Snakefile does)."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: {err}") from None
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
    try:
        jsonschema.validate(config, schema)
    except jsonschema.ValidationError as err:
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(where, f"{where}: {err.message}") from None
    return config


BENCH_KEYS = {"game": str, "batch": int, "step_flops": int, "steps_per_s": list}


def read_bench(path: Path) -> list[dict]:
    """The rows of a `bench/train_throughput.py --json` file; ValueError naming what is wrong."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: {err}") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: not a bench/train_throughput.py --json file (a list of rows)")
    for i, row in enumerate(rows):
        for key, kind in BENCH_KEYS.items():
            if not isinstance(row, dict) or not isinstance(row.get(key), kind):
                raise ValueError(f"{path}: row {i}: `{key}` missing or not a {kind.__name__}")
        if not row["steps_per_s"] or min(row["steps_per_s"]) <= 0:
            raise ValueError(f"{path}: row {i}: `steps_per_s` must be positive numbers")
    return rows


def grid_hours(config: dict, bench: list[dict], dim: int) -> list[dict]:
    """One row per (preset, B) of the grid: runs, steps per run, steps/s, hours.

    hours = Σ_runs training_steps / (steps/s) / 3,600, steps/s the median of the bench's
    windows for the run's game and B. ConfigError where the bench does not apply.
    """
    measured = {(r["game"], r["batch"]): r for r in bench}
    rows: dict[tuple[str, int], dict] = {}
    for game, dataset, p, batch, seed in workflow.runs(config):
        run = f"{game}-{dataset}-b{batch}-p{p}-s{seed}"
        cfg, _ = configs.parse_cli(workflow.train_args(config, game, dataset, p, batch, seed))
        key = (workflow.PRESETS[game], cfg.batch_size)
        if key not in measured:
            raise ConfigError(
                "train",
                f"{run}: the bench has no {key[0]} at B = {key[1]}; run "
                f"bench/train_throughput.py --games {key[0]} --batch-sizes {key[1]}",
            )
        flops = step_flops(cfg, cfg.batch_size, dim)
        if flops != measured[key]["step_flops"]:
            raise ConfigError(
                "train.overrides",
                f"{run}: its step ({flops / 1e9:.3g} GFLOP at D = {dim}) is not the benched one "
                f"({measured[key]['step_flops'] / 1e9:.3g} GFLOP): the bench's speed does not "
                "apply to it",
            )
        row = rows.setdefault(key, {"game": key[0], "batch": key[1], "runs": 0, "steps": 0})
        row["runs"] += 1
        row["steps"] += cfg.training_steps
    out = []
    for key, row in rows.items():
        speed = statistics.median(measured[key]["steps_per_s"])
        out.append({**row, "steps_per_s": speed, "hours": row["steps"] / speed / 3600})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench", type=Path, help="JSON of bench/train_throughput.py --json")
    parser.add_argument("--configfile", type=Path, default=ROOT / "config/paper.yaml")
    parser.add_argument("--dim", type=int, default=2048, help="feature width of the datasets")
    args = parser.parse_args(argv)
    try:
        bench = read_bench(args.bench)
        rows = grid_hours(load_config(args.configfile), bench, args.dim)
    except ValueError as err:  # ConfigError included
        sys.exit(str(err) if not isinstance(err, ConfigError) else f"{args.configfile}: {err}")
    devices = sorted({r.get("device", "unknown device") for r in bench})
    print(f"{args.configfile}: training only, on {', '.join(devices)}")
    print(f"{'game':9s} {'B':>5s} {'runs':>5s} {'steps':>12s} {'steps/s':>8s} {'hours':>9s}")
    for r in rows:
        print(
            f"{r['game']:9s} {r['batch']:5d} {r['runs']:5d} {r['steps']:12,d} "
            f"{r['steps_per_s']:8.3g} {r['hours']:9,.1f}"
        )
    total = sum(r["hours"] for r in rows)
    runs = sum(r["runs"] for r in rows)
    print(f"total: {runs} runs, {total:,.0f} hours ({total / 24:,.1f} days)")


if __name__ == "__main__":
    main()
