#!/usr/bin/env python
"""Training time of a pipeline config's grid from a `make bench` measurement
(docs/performance.md#the-papers-grid).

    python bench/grid_cost.py results/bench/train_throughput.json [--configfile config/paper.yaml]

Every training run of the config's grid (`train`: datasets × games × noise × batch sizes ×
seeds) takes `training_steps` / (the bench's median steps/s for its game and B). Printed per
(game, B): runs, their steps, steps/s and hours; then the total, on the bench's device.
Training only: tests, ETL and the data build are not counted. A run whose step is not the
one benched (`step_flops` at the run's network sizes and its dataset's feature width against
the bench row's) is an error naming the run, since the bench's speed does not apply to it;
so is a user dataset (`own_data`) or shapes data the pipeline does not generate, whose
width is known only once it is built.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import yaml
from train_throughput import step_flops  # bench/ is sys.path[0] when this script runs

from noisy_emcom.configs import workflow
from noisy_emcom.configs.validate import ConfigError
from noisy_emcom.data import registry

ROOT = Path(__file__).resolve().parents[1]


def load_config(path: Path) -> dict:
    """The pipeline config file, checked against config/schema.yaml (as the Snakefile does)."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: {err}") from None
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    try:
        jsonschema.validate(config, schema)
    except jsonschema.ValidationError as err:
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ValueError(f"{path}: {where}: {err.message}") from None
    return config


def _is_positive(x, kind=int | float) -> bool:
    """A finite number > 0 of `kind` (not a bool, which Python counts as an int)."""
    if not isinstance(x, kind) or isinstance(x, bool):
        return False
    return x > 0 and (isinstance(x, int) or math.isfinite(x))  # isfinite overflows on huge ints


def read_bench(path: Path) -> list[dict]:
    """The rows of a `bench/train_throughput.py --json` file, one device, one row per (game, B);
    ValueError naming the file, row and key."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: {err}") from None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: not a bench/train_throughput.py --json file (rows)")
    seen = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {i}: not a mapping")
        speeds = row.get("steps_per_s")
        checks = {
            "game": isinstance(row.get("game"), str),
            "batch": _is_positive(row.get("batch"), int),
            "step_flops": _is_positive(row.get("step_flops"), int),
            "steps_per_s": isinstance(speeds, list) and speeds and all(map(_is_positive, speeds)),
            "device": isinstance(row.get("device", "?"), str) and row.get("device", "?") != "",
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"{path}: row {i}: `{key}` missing or malformed")
        key = (row["game"], row["batch"])
        if key in seen:
            raise ValueError(f"{path}: row {i}: a second row for {key[0]} at B = {key[1]}")
        seen.add(key)
    if len({r.get("device") for r in rows}) > 1:
        raise ValueError(f"{path}: rows from more than one device (or some without one)")
    return rows


def feature_width(config: Mapping, dataset: str) -> int:
    """D of a built-in dataset: 2,048 for the BYOL features, the encoder's width for shapes."""
    if dataset not in registry.DATASETS:
        raise ConfigError(
            "train.datasets",
            f"train.datasets: {dataset!r} is not a built-in dataset; its feature width is known "
            "only once it is built, so its runs cannot be costed here",
        )
    if registry.DATASETS[dataset].family == "shapes":
        shapes = config.get("data", {}).get("shapes", {})
        if shapes.get("source", "generate") != "generate":
            raise ConfigError(
                "data.shapes.source",
                f"data.shapes.source: {shapes['source']!r}: the width of shapes data that the "
                "pipeline does not generate is known only once it is built, so its runs cannot "
                "be costed here",
            )
        return shapes.get("encoder", {}).get("width", registry.SHAPES_DIM)
    return registry.DATASETS[dataset].feature_dim


def grid_hours(config: Mapping, bench: list[dict], bench_name: str = "the bench") -> list[dict]:
    """One row per (preset, B) of the grid: runs, their steps, steps/s, hours.

    hours = Σ_runs training_steps / (steps/s) / 3,600, steps/s the median of the bench's
    windows for the run's game and B. ConfigError where the bench does not apply.
    """
    widths = {d: feature_width(config, d) for d in config["train"]["datasets"]}  # before runs
    measured = {(r["game"], r["batch"]): r for r in bench}
    rows: dict[tuple[str, int], dict] = {}
    for run, dataset, cfg in workflow.train_configs(config):
        key = (cfg.experiment, cfg.batch_size)
        if key not in measured:
            raise ConfigError(
                "train",
                f"{run}: {bench_name} has no {key[0]} at B = {key[1]}; run "
                f"bench/train_throughput.py --games {key[0]} --batch-sizes {key[1]}",
            )
        dim = widths[dataset]
        flops, benched = step_flops(cfg, cfg.batch_size, dim), measured[key]["step_flops"]
        if flops != benched:
            raise ConfigError(
                "train",
                f"{run}: its step ({flops / 1e9:.4g} GFLOP at D = {dim}) is not the one in "
                f"{bench_name} ({benched / 1e9:.4g} GFLOP): the bench's speed does not apply",
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
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "paper.yaml")
    args = parser.parse_args(argv)
    try:
        bench = read_bench(args.bench)
        rows = grid_hours(load_config(args.configfile), bench, str(args.bench))
    except ConfigError as err:
        sys.exit(f"{args.configfile}: {err}")
    except ValueError as err:
        sys.exit(str(err))
    print(f"{args.configfile}: training only, on {bench[0].get('device', 'an unnamed device')}")
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
