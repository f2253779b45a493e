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

Each file is checked as it is read (truncated rows, text in numeric columns, empty identifying
values, values outside their range: docs/tests.md#what-the-report-stage-accepts); errors are
ReportInputErrors naming the file, the line and the column.

Nothing here imports JAX: the report stage runs on the result files only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
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

UNIT, NON_NEGATIVE, CORRELATION = (0.0, 1.0), (0.0, math.inf), (-1.0, 1.0)
COLUMN_RANGES: dict[str, tuple[float, float]] = {
    # accuracies, fractions and probabilities (docs/tests.md, train.LOG_COLUMNS, docs/etl.md)
    **dict.fromkeys(
        ("accuracy", "accuracy_batch_std", "greedy_accuracy", "rank5_accuracy",
         "erased_fraction", "fano_bound", "fano_bound_tight", "channel_p", "train_noise",
         "etl_noise"),
        UNIT,
    ),
    # counts, sizes, seeds and steps; entropies, capacities, ETL losses, speeds
    **dict.fromkeys(INT_COLUMNS, NON_NEGATIVE),
    **dict.fromkeys(
        ("speaker_entropy", "listener_entropy", "capacity_bits", "input_noise", "loss", "mse",
         "steps_per_second"),
        NON_NEGATIVE,
    ),
    "topsim": CORRELATION,
    "reward": CORRELATION,  # the mean of rewards 0/1 (LG(S)) or ±1 (RL)
}  # fmt: skip
"""Range of a column's values, wherever it appears; an empty cell (NaN) passes."""
NUMERIC_COLUMNS = {*INT_COLUMNS, *COLUMN_RANGES, "value"}
"""Columns that hold numbers in every file (any other column holding a number must too)."""

MEASURE_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(
        ("position_entropy", "mean_position_entropy", "unigram_entropy", "n_messages",
         "topsim_nan_batches", "accuracy_erased_norm", "redundancy"),
        NON_NEGATIVE,
    ),
    **dict.fromkeys(
        ("unique_message_ratio", "accuracy_erased_mean", "accuracy_erased_min",
         "accuracy_erased_max", "erasure_weight"),
        UNIT,
    ),
    "topsim": CORRELATION,
    "erasure_sensitivity": CORRELATION,  # a difference of two accuracies
    "effective_positions": (1.0, math.inf),  # 2^H with H ≥ 0
}  # fmt: skip
"""Range of ``value`` per ``measure`` of measures.csv (docs/tests.md, language measures)."""

ETL_METRIC_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("loss", "mse", "baseline_mse", "n_games"), NON_NEGATIVE),
    "erased_fraction": UNIT,
}
"""Range of ``value`` per ``metric`` of an ETL results.csv (docs/etl.md); besides these, every
metric named ``*accuracy*`` is in [0, 1]."""

TEST_REQUIRED: tuple[str, ...] = (
    *RUN_COLUMNS,
    "checkpoint_step",
    "test",
    "eval_batch_size",
    "channel",
    "decoding",
    "eval_seed",
    "repetition",
    "n_epochs",
)
"""Identifying columns that no test or measures row leaves empty (docs/tests.md#result-rows)."""

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


def read_result_file(path: str | Path, required: Sequence[str] = ()) -> pd.DataFrame:
    """One result table (``.csv`` or ``.parquet``) with normalised column types, indexed by
    line (CSV) or row (Parquet) number. Refused with a ReportInputError naming the file, the
    line and the column: a CSV cut short or with a row of the wrong number of fields, a value
    that is not a number in a numeric column, a fractional count, a value outside
    ``COLUMN_RANGES`` and an empty cell in a ``required`` column."""
    path = Path(path)
    if not path.exists():
        raise ReportInputError(f"input file {path} does not exist")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
            df.index = pd.RangeIndex(1, len(df) + 1)
        else:
            text = path.read_text(encoding="utf-8")
            header, lines = _csv_lines(path, text)
            df = pd.read_csv(
                io.StringIO(text),
                dtype={c: "string" for c in header if c in STRING_COLUMNS},
                keep_default_na=True,
            )
            if len(df) != len(lines):
                raise ReportInputError(f"{path}: {len(df)} rows read from {len(lines)} lines")
            df.index = pd.Index(lines)
    except ReportInputError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as err:
        # ValueError: UnicodeError, and pyarrow's ArrowInvalid for a damaged Parquet file
        raise ReportInputError(f"{path}: cannot read ({err})") from err
    _check_numbers(df, path)
    df = normalise_types(df)
    for c in df.columns.intersection(list(COLUMN_RANGES)):
        _check_range(df, path, c, *COLUMN_RANGES[c])
    _require_values(df, path, required)
    return df


def _csv_lines(path: Path, text: str) -> tuple[list[str], list[int]]:
    """Header and line number of each data row of a CSV text; refuses a text that ends
    mid-line (a truncated file) and rows whose number of fields differs from the header's.
    Blank lines are skipped, as pandas does."""
    if not text:
        raise ReportInputError(f"{path}: empty file (no header line)")
    if not text.endswith("\n"):
        n = text.count("\n") + 1
        raise ReportInputError(
            f"{path}, line {n}: the file ends in the middle of a line (truncated?)"
        )
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    lines, start = [], reader.line_num + 1
    for row in reader:
        if row and len(row) != len(header):
            raise ReportInputError(
                f"{path}, line {start}: {len(row)} fields where the header has {len(header)} "
                "(a truncated or garbled row)"
            )
        if row:
            lines.append(start)
        start = reader.line_num + 1
    return header, lines


def _at(path: Path, index: object) -> str:
    return f"{path}, {'row' if path.suffix == '.parquet' else 'line'} {index}"


def _check_numbers(df: pd.DataFrame, path: Path) -> None:
    """Refuse text in a numeric column (a known one, or one holding numbers elsewhere) and a
    fraction in an integer column."""
    for c in df.columns:
        if c in STRING_COLUMNS or pd.api.types.is_bool_dtype(df[c]):
            continue
        values = pd.to_numeric(df[c], errors="coerce")
        if c not in NUMERIC_COLUMNS and values.isna().all():
            continue  # a text column
        bad = df[c].notna() & values.isna()
        if c in INT_COLUMNS:
            bad |= values.notna() & (values % 1 != 0)
        if bad.any():
            i = bad.idxmax()
            kind = "a whole number" if pd.notna(values[i]) else "a number"
            raise ReportInputError(f"{_at(path, i)}, column {c!r}: {str(df[c][i])!r} is not {kind}")


def _check_range(df: pd.DataFrame, path: Path, column: str, lo, hi, key: str = "") -> None:
    """Refuse values of ``column`` outside [lo, hi] (scalars, or per-row Series for a long
    table whose rows are told apart by ``key``); NaN passes (empty by design in places)."""
    values = df[column].astype("float64")
    bad = (values < lo) | (values > hi)
    if bad.any():
        i = bad.idxmax()
        low, high = (b[i] if isinstance(b, pd.Series) else b for b in (lo, hi))
        of = f" ({key} {df[key][i]!r})" if key else ""
        raise ReportInputError(
            f"{_at(path, i)}, column {column!r}{of}: {values[i]:g} is outside [{low:g}, {high:g}]"
        )


def _check_long(df: pd.DataFrame, path: Path, key: str, range_of) -> None:
    """Range of ``value`` per ``key`` (measure, metric) of a long table: ``range_of(name)``,
    None for any value."""
    bounds = [range_of(k) or (-math.inf, math.inf) for k in df[key].astype(str)]
    lo = pd.Series([b[0] for b in bounds], index=df.index)
    hi = pd.Series([b[1] for b in bounds], index=df.index)
    _check_range(df, path, "value", lo, hi, key)


def _require_values(df: pd.DataFrame, path: Path, columns: Iterable[str]) -> None:
    for c in columns:
        if c in df.columns and df[c].isna().any():
            raise ReportInputError(f"{_at(path, df[c].isna().idxmax())}, column {c!r}: empty")


def concat_unique(files: Sequence[tuple[Path, pd.DataFrame]], key: Sequence[str]) -> pd.DataFrame:
    """`concat` of the files' rows, refusing a row whose `key` values another row has too: a
    file given twice, or two files of one run. The ReportInputError names both places."""
    out = concat([df for _, df in files])
    cols = [c for c in key if c in out.columns]
    later = out.duplicated(subset=cols) if len(out) else pd.Series(dtype=bool)
    if later.any():
        where = [_at(path, line) for path, df in files for line in df.index]  # out's rows
        j = int(np.argmax(later.to_numpy()))
        text = out[cols].astype(str)  # one dtype per column after concat; NaN as 'nan'
        i = int(np.argmax((text == text.iloc[j]).all(axis=1).to_numpy()))
        raise ReportInputError(f"{where[j]} repeats {where[i]} (the same {', '.join(cols)})")
    return out


def _require(df: pd.DataFrame, columns: Iterable[str], path: Path, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: {what} lacks column(s) {missing}")


def _test_column(df: pd.DataFrame) -> list[str]:
    return sorted(set(df["test"].dropna().astype(str))) if "test" in df.columns else []


def test_name_of(path: Path, df: pd.DataFrame) -> str:
    """Which test a file holds: its stem when that is a test name, else its ``test`` column."""
    if path.stem in TESTS:
        return path.stem
    names = _test_column(df)
    if len(names) == 1 and names[0] in TESTS:
        return names[0]
    if names == ["measures"]:
        raise ReportInputError(
            f"{path}: a table of redundancy measures (test column 'measures'), not of a test: "
            "give it as a measures file (--measures)"
        )
    raise ReportInputError(
        f"{path}: cannot tell which test it holds (file stem not in {list(TESTS)}, "
        f"test column {names})"
    )


def read_tests(paths: Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    """Per-run test tables concatenated per test: {test name: rows}."""
    parts: dict[str, list[tuple[Path, pd.DataFrame]]] = {}
    for p in paths:
        p = Path(p)
        df = read_result_file(p)
        name = test_name_of(p, df)  # a table of another kind is named as such first
        _require_values(df, p, (*TEST_REQUIRED, "accuracy", *TOPSIM_KEY_COLUMNS))
        needed = [*IDENTIFYING_COLUMNS, "accuracy"]
        if name == "testtopsim":
            needed += [*TOPSIM_KEY_COLUMNS, "topsim"]
        _require(df, needed, p, name)
        parts.setdefault(name, []).append((p, df))
    key = [*IDENTIFYING_COLUMNS, *TOPSIM_KEY_COLUMNS]
    return {name: concat_unique(files, key) for name, files in parts.items()}


def read_measures(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        p = Path(p)
        df = read_result_file(p)
        tests = [name for name in _test_column(df) if name in TESTS]
        if tests or p.stem in TESTS:
            raise ReportInputError(
                f"{p}: a table of {', '.join(tests) or p.stem}, not of redundancy measures: "
                "give it as a test file (--tests)"
            )
        _require_values(df, p, (*TEST_REQUIRED, "measure"))
        _require(df, [*IDENTIFYING_COLUMNS, *MEASURE_KEY_COLUMNS, "value"], p, "measures")
        _check_long(df, p, "measure", MEASURE_RANGES.get)
        frames.append((p, df))
    return concat_unique(frames, [*IDENTIFYING_COLUMNS, *MEASURE_KEY_COLUMNS])


def read_train_logs(paths: Sequence[str | Path]) -> pd.DataFrame:
    """train_log.csv files with the run identity columns put in front."""
    frames = []
    for p in paths:
        p = Path(p)
        df = read_result_file(p, ("step",))
        _require(df, ["step", "accuracy"], p, "train log")
        ident = run_identity(p.parent)
        for c in reversed(RUN_COLUMNS):
            if c in df.columns:
                df = df.drop(columns=c)
            df.insert(0, c, ident[c])
        frames.append((p, normalise_types(df)))
    return concat_unique(frames, [*RUN_COLUMNS, "step"])


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
    _require_values(df, path, needed)
    return normalise_types(df)


def _etl_metric_range(metric: str) -> tuple[float, float] | None:
    return ETL_METRIC_RANGES.get(metric) or (UNIT if "accuracy" in metric else None)


def read_etl_results(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        p = Path(p)
        df = read_result_file(p, ("metric",))
        _require(df, ["metric", "value"], p, "ETL results")
        _check_long(df, p, "metric", _etl_metric_range)
        needed = [*RUN_COLUMNS, "task", "etl_noise", "metric"]
        frames.append((p, _fill_identity(df, _etl_identity(p), p, needed)))
    return concat_unique(frames, [*RUN_COLUMNS, *ETL_KEY_COLUMNS])


def read_etl_curves(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        p = Path(p)
        df = read_result_file(p, ("step",))
        _require(df, ["step"], p, "ETL curve")
        frames.append(
            (p, _fill_identity(df, _etl_identity(p), p, [*RUN_COLUMNS, "task", "etl_noise"]))
        )
    return concat_unique(frames, [*RUN_COLUMNS, *ETL_KEY_COLUMNS[:5], "step"])


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
