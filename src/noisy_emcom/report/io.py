"""Reading the per-run result files (report outputs are written by `noisy_emcom.files`).

Inputs (layout in results/README.md), always given as explicit file lists:
- ``runs/<run_id>/tests/<test>.csv``: test rows with every identifying column (docs/tests.md);
- ``runs/<run_id>/measures.csv``: long rows ``measure, meaning, message_stage, position, value``
  beside the identifying columns;
- ``runs/<run_id>/train_log.csv``: ``train.LOG_COLUMNS``; the run's identity comes from the
  ``config.json`` beside it (or, without one, from the run directory's name);
- ``runs/<run_id>/etl/<task>-<etl_dataset>-p<noise>-<decoding>/results.csv`` (long rows
  ``metric, value``) and ``curve.csv`` (the ETL learning curve); identity columns missing
  from a file are filled from ``config.json`` / the run id and from the ETL directory name.

Nothing here imports JAX: the report stage runs on the result files only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from noisy_emcom import language
from noisy_emcom.language import IDENTIFYING_COLUMNS

TESTS: tuple[str, ...] = ("testchannel", "testmessage", "testinput", "testtopsim")

METRIC_COLUMNS = language.METRIC_COLUMNS
"""Metric columns of every accuracy row (docs/tests.md), as written by ``noisy_emcom.evaluate``."""

TOPSIM_VALUE_COLUMNS: tuple[str, ...] = (
    "topsim",
    "n_pairs_per_batch",
    "n_batches",
    "n_nan_batches",
)
TOPSIM_KEY_COLUMNS: tuple[str, ...] = ("meaning", "message_stage")
MEASURE_KEY_COLUMNS: tuple[str, ...] = ("measure", "meaning", "message_stage", "position")
ETL_KEY_COLUMNS: tuple[str, ...] = (
    "task",
    "etl_dataset",
    "etl_noise",
    "decoding",
    "etl_seed",
    "etl_steps",
    "metric",
)
RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "game",
    "dataset",
    "train_batch_size",
    "train_noise",
    "seed",
)
"""Columns naming a training run (the run id, docs/config.md#run-ids-and-layout)."""

STRING_COLUMNS = language.STR_COLUMNS | {"task", "etl_dataset", "metric"}
INT_COLUMNS = language.INT_COLUMNS | {"etl_seed", "etl_steps", "step"}

_RUN_ID = re.compile(
    r"^(?P<game>[^-]+)-(?P<dataset>.+)-b(?P<b>\d+)-p(?P<p>\d+(?:\.\d*)?)-s(?P<seed>\d+)$"
)
_ETL_DIR = re.compile(
    r"^(?P<task>[^-]+)-(?P<etl_dataset>.+)-p(?P<noise>\d+(?:\.\d*)?)-(?P<decoding>[^-]+)$"
)


class ReportInputError(ValueError):
    """A named input file is missing or malformed."""


# --------------------------------------------------------------------------------------------
# Identity helpers
# --------------------------------------------------------------------------------------------


def parse_run_id(run_id: str) -> dict[str, object]:
    """``nlg-imagenet-b1024-p0.5-s0`` → {run_id, game, dataset, train_batch_size,
    train_noise, seed}."""
    m = _RUN_ID.match(run_id)
    if not m:
        raise ReportInputError(
            f"run id {run_id!r} is not of the form <game>-<dataset>-b<B>-p<p_max>-s<seed>"
        )
    return {
        "run_id": run_id,
        "game": m["game"],
        "dataset": m["dataset"],
        "train_batch_size": int(m["b"]),
        "train_noise": float(m["p"]),
        "seed": int(m["seed"]),
    }


def parse_etl_dir(name: str) -> dict[str, object]:
    """``classification-shapes_noimg-p0.5-sample`` → {task, etl_dataset, etl_noise, decoding}."""
    m = _ETL_DIR.match(name)
    if not m:
        raise ReportInputError(
            f"ETL directory {name!r} is not of the form <task>-<etl_dataset>-p<noise>-<decoding>"
        )
    return {
        "task": m["task"],
        "etl_dataset": m["etl_dataset"],
        "etl_noise": float(m["noise"]),
        "decoding": m["decoding"],
    }


def run_identity(run_dir: Path) -> dict[str, object]:
    """Identity of the run stored in ``run_dir``: from its ``config.json`` when present
    (fields game, dataset.name, batch_size, channel.p_max, random_seed), else from the
    directory name."""
    cfg_path = run_dir / "config.json"
    if cfg_path.exists():
        try:
            cfg = json.loads(cfg_path.read_text())
            ident = {
                "game": str(cfg["game"]),
                "dataset": str(cfg["dataset"]["name"]),
                "train_batch_size": int(cfg["batch_size"]),
                "train_noise": float(cfg["channel"]["p_max"]),
                "seed": int(cfg["random_seed"]),
            }
        except (KeyError, TypeError, ValueError) as err:
            raise ReportInputError(f"{cfg_path}: cannot read the run identity ({err!r})") from err
        ident["run_id"] = (
            f"{ident['game']}-{ident['dataset']}-b{ident['train_batch_size']}"
            f"-p{ident['train_noise']}-s{ident['seed']}"
        )
        return {c: ident[c] for c in RUN_COLUMNS}
    return parse_run_id(run_dir.name)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def normalise_types(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable ``string`` / ``Int64`` for the known columns, float64 for other numbers."""
    df = df.copy()
    for c in df.columns:
        if c in STRING_COLUMNS:
            df[c] = df[c].astype("string")
        elif c in INT_COLUMNS:
            values = pd.to_numeric(df[c], errors="coerce")
            df[c] = values.round().astype("Int64")
        elif df[c].dtype == object or str(df[c].dtype) in ("str", "string"):
            converted = pd.to_numeric(df[c], errors="coerce")
            if converted.notna().sum() == df[c].notna().sum():
                df[c] = converted.astype("float64")
        elif pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]):
            df[c] = df[c].astype("float64")
    return df


def read_result_file(path: str | Path) -> pd.DataFrame:
    """One result table (``.csv`` or ``.parquet``) with normalised column types."""
    path = Path(path)
    if not path.exists():
        raise ReportInputError(f"input file {path} does not exist")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            header = pd.read_csv(path, nrows=0).columns
            df = pd.read_csv(
                path,
                dtype={c: "string" for c in header if c in STRING_COLUMNS},
                keep_default_na=True,
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as err:
        raise ReportInputError(f"{path}: cannot read ({err})") from err
    return normalise_types(df)


def _require(df: pd.DataFrame, columns: Iterable[str], path: Path, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: {what} lacks column(s) {missing}")


def test_name_of(path: Path, df: pd.DataFrame) -> str:
    """Which test a file holds: its stem when that is a test name, else its ``test`` column."""
    if path.stem in TESTS:
        return path.stem
    names = sorted(set(df["test"].dropna().astype(str))) if "test" in df.columns else []
    if len(names) == 1 and names[0] in TESTS:
        return names[0]
    raise ReportInputError(
        f"{path}: cannot tell which test it holds (file stem not in {list(TESTS)}, "
        f"test column {names})"
    )


def read_tests(paths: Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    """Per-run test tables concatenated per test: {test name: rows}."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for p in paths:
        p = Path(p)
        df = read_result_file(p)
        name = test_name_of(p, df)
        needed = [*IDENTIFYING_COLUMNS, "accuracy"]
        if name == "testtopsim":
            needed += [*TOPSIM_KEY_COLUMNS, "topsim"]
        _require(df, needed, p, name)
        parts.setdefault(name, []).append(df)
    return {name: concat(frames) for name, frames in parts.items()}


def read_measures(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        p = Path(p)
        df = read_result_file(p)
        _require(df, [*IDENTIFYING_COLUMNS, *MEASURE_KEY_COLUMNS, "value"], p, "measures")
        frames.append(df)
    return concat(frames)


def read_train_logs(paths: Sequence[str | Path]) -> pd.DataFrame:
    """train_log.csv files with the run identity columns put in front."""
    frames = []
    for p in paths:
        p = Path(p)
        df = read_result_file(p)
        _require(df, ["step", "accuracy"], p, "train log")
        ident = run_identity(p.parent)
        for c in reversed(RUN_COLUMNS):
            if c in df.columns:
                df = df.drop(columns=c)
            df.insert(0, c, ident[c])
        frames.append(normalise_types(df))
    return concat(frames)


def _etl_identity(path: Path) -> dict[str, object]:
    """Identity of an ETL file ``runs/<run_id>/etl/<name>/<file>`` from its location."""
    ident: dict[str, object] = {}
    etl_dir = path.parent
    try:
        ident.update(parse_etl_dir(etl_dir.name))
    except ReportInputError:
        pass
    run_dir = etl_dir.parent.parent
    if etl_dir.parent.name == "etl":
        try:
            ident.update(run_identity(run_dir))
        except ReportInputError:
            pass
    return ident


def _fill_identity(df: pd.DataFrame, ident: dict[str, object], path: Path, needed) -> pd.DataFrame:
    for c, v in ident.items():
        if c not in df.columns:
            df[c] = v
        elif df[c].isna().all():
            df[c] = v
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ReportInputError(
            f"{path}: ETL file lacks column(s) {missing} and its location "
            "(runs/<run_id>/etl/<task>-<etl_dataset>-p<noise>-<decoding>/) does not give them"
        )
    return normalise_types(df)


def read_etl_results(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        p = Path(p)
        df = read_result_file(p)
        _require(df, ["metric", "value"], p, "ETL results")
        frames.append(
            _fill_identity(df, _etl_identity(p), p, [*RUN_COLUMNS, "task", "etl_noise", "metric"])
        )
    return concat(frames)


def read_etl_curves(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        p = Path(p)
        df = read_result_file(p)
        _require(df, ["step"], p, "ETL curve")
        frames.append(_fill_identity(df, _etl_identity(p), p, [*RUN_COLUMNS, "task", "etl_noise"]))
    return concat(frames)


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    non_empty = [f for f in frames if len(f)] or frames[:1]
    columns: list[str] = []
    for f in frames:
        columns += [c for c in f.columns if c not in columns]
    out = pd.concat([f.reindex(columns=columns) for f in non_empty], ignore_index=True)
    return normalise_types(out)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
