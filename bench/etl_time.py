#!/usr/bin/env python
"""Wall time and test metric of each ETL task (docs/etl.md) for one speaker checkpoint.

    python bench/etl_time.py --checkpoint results/runs/<run_id>/final.ckpt \
        --data-dir results/tfds --family shapes [--tasks classification attribute] \
        [--noise 0.0] [--config.etl.training_steps=1000 --config.listener.lstm_size=64 ...]

For each task the dataset is the family's variant that carries the task's field (shapes:
discrimination* on `shapes_logits`, classification and attribute on `shapes_noimg`,
reconstruction on `shapes`; celeba likewise; imagenet: discrimination* and classification).
`--config.*` overrides apply to every task's `etl` config. Each line gives the training wall
time (compilation included, one process, fresh compilation per task), the test wall time,
the steps per second of the last logging window and the task's main test metric. Outputs go
to a temporary folder (or --out-dir) and are kept there.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from noisy_emcom import configs, etl

FAMILY_DATASETS = {
    "shapes": {"logits": "shapes_logits", "noimg": "shapes_noimg", "image": "shapes"},
    "celeba": {"logits": "celeba_logits", "noimg": "celeba_noimg", "image": "celeba"},
    "imagenet": {"logits": "imagenet", "noimg": "imagenet", "image": None},
}
TASK_VARIANT = {
    "discrimination": "logits",
    "discriminationdist": "logits",
    "classification": "noimg",
    "attribute": "noimg",
    "reconstruction": "image",
}
MAIN_METRIC = {
    "discrimination": "accuracy",
    "discriminationdist": "accuracy",
    "classification": "accuracy",
    "attribute": "accuracy",
    "reconstruction": "psnr",
}


def main(argv: list[str]) -> int:
    overrides, rest = {}, []
    for arg in argv:
        if arg.startswith("--config."):
            key, _, value = arg[len("--config.") :].partition("=")
            overrides[key] = value
        else:
            rest.append(arg)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="speaker's training checkpoint")
    p.add_argument("--data-dir", required=True, help="TFDS data directory")
    p.add_argument("--family", default="shapes", choices=sorted(FAMILY_DATASETS))
    p.add_argument("--tasks", nargs="+", default=list(TASK_VARIANT), choices=list(TASK_VARIANT))
    p.add_argument("--noise", type=float, default=0.0, help="etl.noise of every task")
    p.add_argument("--out-dir", default="", help="where listeners and curves go")
    a = p.parse_args(rest)
    out_root = Path(a.out_dir or tempfile.mkdtemp(prefix="etl_time_"))
    speaker = etl.load_speaker(a.checkpoint)
    print(f"speaker {configs.run_id(speaker.cfg)} step {speaker.step}; outputs in {out_root}")
    print(f"{'task':<20}{'dataset':<16}{'steps':>7}{'batch':>7}{'train s':>9}{'test s':>8}"
          f"{'steps/s':>9}  metric")  # fmt: skip
    for task in a.tasks:
        dataset = FAMILY_DATASETS[a.family][TASK_VARIANT[task]]
        if dataset is None:
            print(f"{task:<20}(no {a.family} variant with the field this task needs)")
            continue
        cfg = configs.get_config("etl", f"{dataset}_{task}_{a.noise}", overrides)
        out = out_root / f"{task}-{dataset}-p{a.noise}-{cfg.etl.decoding}"
        tic = time.perf_counter()
        result = etl.train_etl(cfg, speaker, a.data_dir, out, progress=False)
        t_train = time.perf_counter() - tic
        tic = time.perf_counter()
        png = out / "reconstructions.png" if task == "reconstruction" else None
        rows = etl.run_test(speaker, result.listener_path, a.data_dir, png=png)
        t_test = time.perf_counter() - tic
        etl.write_results(rows, out / "results.csv")
        got = dict(zip(rows["metric"], rows["value"], strict=True))
        rate = pd.read_csv(out / "curve.csv")["steps_per_second"].iloc[-1]
        metric = MAIN_METRIC[task]
        extra = f", rank5_accuracy {got['rank5_accuracy']:.4f}" if task == "classification" else ""
        extra += f", mse {got['mse']:.4f}" if task == "reconstruction" else ""
        print(f"{task:<20}{dataset:<16}{cfg.etl.training_steps:>7}{cfg.etl.batch_size:>7}"
              f"{t_train:>9.1f}{t_test:>8.1f}{rate:>9.1f}  {metric} {got[metric]:.4f}{extra}"
              f" (test games {int(got['n_games'])})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
