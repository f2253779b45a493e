#!/usr/bin/env python
"""Convergence study: long training runs evaluated on the test split along the way.

    python workflow/scripts/convergence.py --config config/convergence.yaml [--jobs 2]
    python workflow/scripts/convergence.py --config config/convergence.yaml --report-only

Every run of every group of the study config (docs/convergence.md) trains in its own process
(one XLA thread each, `jobs` side by side) and evaluates its state every `eval.every` steps:
identity and erasure accuracy at each K on the test split; rows go to
<results>/<group>/<run>/curve.csv. An interrupted study resumes: finished runs are skipped,
unfinished ones resume from their last checkpoint. The report (<results>/convergence.md,
convergence.csv, convergence.png) is written at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

GAMES = {"lg_s": "lg_rlss", "lg_rl": "lg_rlrl", "nlg": "nlg_rlrl"}
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def plan(study: dict) -> list[tuple[str, str, int]]:
    """(group, game, seed) of every run, in the config's order."""
    return [
        (group, game, int(seed))
        for group, spec in study["groups"].items()
        for game in spec["games"]
        for seed in spec["seeds"]
    ]


def run_dir(study: dict, group: str, game: str, seed: int) -> Path:
    return Path(study["results"]) / group / f"{game}-s{seed}"


def train_and_evaluate(study: dict, group: str, game: str, seed: int) -> None:
    """One run: train to each evaluation step, evaluate, append to curve.csv (resumable)."""
    import numpy as np
    import pandas as pd

    from noisy_emcom import evaluate, train
    from noisy_emcom.data import loader, own

    spec = study["groups"][group]
    dataset, data_dir = study["dataset"], study["data_dir"]
    sweep = f"shapes_logits_{study['nlg_noise']}" if game == "nlg" else "shapes_logits"
    overrides = {**study["base"], **spec["overrides"], "random_seed": seed}
    ev = study["eval"]
    overrides.update(
        {
            "checkpoint_every": ev["every"],  # an interrupted run resumes at its last evaluation
            "eval.batch_sizes": tuple(ev["batch_sizes"]),
            "eval.topsim_ratios": (0.2,) * len(ev["batch_sizes"]),  # unused here
            "eval.epochs": ev["epochs"],
            "eval.seed": ev["seed"],
            "eval.decodings": ("sample",),
        }
    )
    # As train.py --dataset: a built-in or user dataset name, or a table file.
    cfg = own.train_config(f"{GAMES[game]}:{sweep}", overrides, dataset, data_dir)
    folder = run_dir(study, group, game, seed)
    curve_path = folder / "curve.csv"
    done = set(pd.read_csv(curve_path)["step"]) if curve_path.exists() else set()
    source = cfg.dataset.file or dataset
    table = loader.load_split(source, "train", data_dir, ("logit",))["logit"]
    data = evaluate.load_eval_data(source, data_dir, with_attributes=False)

    def settings(k: int):
        return [
            evaluate.Setting("testchannel", k, "identity", 0.0),
            evaluate.Setting("testchannel", k, "erasure", float(ev["erasure_p"])),
        ]

    total = cfg.training_steps
    if total % int(ev["every"]):
        raise ValueError(f"training_steps {total} is not a multiple of eval.every {ev['every']}")

    def evaluate_at(step: int, state) -> None:
        if step % int(ev["every"]) or step in done:
            return
        model = evaluate.build_model(cfg, state.speaker, state.listener, step)
        rows = [
            {
                "group": group,
                "game": game,
                "seed": seed,
                "step": step,
                "eval_batch_size": out.setting.eval_batch_size,
                "channel": out.setting.channel,
                "channel_p": out.setting.channel_p,
                "n_games": int(out.batches.size),
                "accuracy": float(np.sum(out.stats.n_correct) / out.batches.size),
            }
            for out in evaluate.sweep(model, data, settings)
        ]
        pd.DataFrame(rows).to_csv(curve_path, mode="a", header=not curve_path.exists(), index=False)
        print(f"{group}/{game}-s{seed}: step {step} evaluated", flush=True)

    train.train(cfg, table, folder, progress=False, on_dispatch=evaluate_at)


def launch(config: Path, run: tuple[str, str, int]) -> tuple[tuple, int, float]:
    """The run in a child process with one XLA thread; (run, exit status, seconds)."""
    group, game, seed = run
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {ONE_THREAD}".strip()}
    log = Path(yaml.safe_load(config.read_text())["results"]) / group / f"{game}-s{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    with open(log, "a") as out:
        cmd = [sys.executable, __file__, "--config", str(config), "--run", group, game, str(seed)]
        status = subprocess.call(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    return run, status, time.perf_counter() - tic


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("config/convergence.yaml"))
    parser.add_argument("--jobs", type=int, default=0, help="runs side by side (config: jobs)")
    parser.add_argument("--run", nargs=3, metavar=("GROUP", "GAME", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    study = yaml.safe_load(args.config.read_text())
    if args.run:
        from noisy_emcom.data.errors import DataError

        group, game, seed = args.run
        try:
            train_and_evaluate(study, group, game, int(seed))
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    if not args.report_only:
        runs = [r for r in plan(study) if not (run_dir(study, *r) / "final.ckpt").exists()]
        jobs = args.jobs or int(study.get("jobs", 1))
        failed = []
        with ThreadPoolExecutor(jobs) as pool:
            for run, status, seconds in pool.map(lambda r: launch(args.config, r), runs):
                print(f"{'/'.join(map(str, run))}: exit {status} after {seconds:.0f} s", flush=True)
                if status:
                    failed.append(run)
        if failed:
            print(f"error: {len(failed)} runs failed; see their .log files", file=sys.stderr)
            return 1
    from noisy_emcom.report import convergence

    out = convergence.write_report(study)
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
