#!/usr/bin/env python
"""Where the minutes of a pipeline run go: job wall times per stage from Snakemake's benchmarks.

    python bench/pipeline_time.py [results/logs/benchmarks]

Every rule that runs a job writes <results>/logs/benchmarks/<stage>/<job>.tsv (Snakemake's
`benchmark:`, wall seconds in column `s`). Prints, per stage, the jobs, their summed and
longest wall time, and the summed time divided by the cores (the stage's share of the wall
time when the jobs run side by side).
"""

import argparse
import os
from pathlib import Path

import pandas as pd


def stage_times(folder: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(folder.glob("*/*.tsv")):
        seconds = float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
        rows.append({"stage": path.parent.name, "job": path.stem, "seconds": seconds})
    if not rows:
        raise SystemExit(f"error: no benchmark files under {folder}/<stage>/ (run the pipeline)")
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default="results/logs/benchmarks", type=Path)
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    args = parser.parse_args()
    jobs = stage_times(args.folder)
    table = jobs.groupby("stage")["seconds"].agg(jobs="count", total_s="sum", longest_s="max")
    table["total_s / cores"] = table["total_s"] / args.cores
    total = jobs["seconds"].sum()
    table.loc["all"] = [len(jobs), total, jobs["seconds"].max(), total / args.cores]
    print(table.round(1).to_string())


if __name__ == "__main__":
    main()
