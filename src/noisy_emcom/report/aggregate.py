"""Aggregation over seeds and the helpers shared by tables, figures and claims.

Two levels of aggregation:
1. ``run_level``: one value per training run (``run_id``) and cell, the mean over the rows
   the cell pools within that run (repetitions; erased subsets of one size in the message
   test);
2. ``seed_stats``: across runs that differ only in their training seed, the mean, the sample
   standard deviation (ddof = 1; NaN for a single seed) and n.

``aggregate_over_seeds`` applies (2) directly to a concatenated table, grouping by every
identifying column except ``seed`` and ``run_id``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

GAME_LABELS = {"lg_s": "LG(S)", "lg_rl": "LG(RL)", "nlg": "NLG"}
GAME_ORDER = ("lg_s", "lg_rl", "nlg")
SEED_COLUMNS = ("seed", "run_id")
CONFIG_BASE = ("dataset", "train_batch_size")
"""Configuration columns always kept as leading row levels of paper tables."""


def model_label(game: object, train_noise: object) -> str:
    """``LG(S)``, ``LG(RL)``; ``NLG(0.5)`` for NLG (its training p_max); any other game name
    as is (with its p_max when non-zero)."""
    g = str(game)
    label = GAME_LABELS.get(g, g)
    p = float(train_noise) if train_noise is not None and not pd.isna(train_noise) else 0.0
    if g == "nlg" or p > 0:
        label = f"{label}({p:g})"
    return label


def model_sort_key(game: object, train_noise: object) -> tuple:
    g = str(game)
    p = float(train_noise) if train_noise is not None and not pd.isna(train_noise) else 0.0
    rank = GAME_ORDER.index(g) if g in GAME_ORDER else len(GAME_ORDER)
    return (rank, g, p)


def add_model(df: pd.DataFrame) -> pd.DataFrame:
    """Add the ``model`` label column (game with its training noise) and an ordered
    categorical of it, so that sorting puts LG(S), LG(RL), NLG(p…) in that order."""
    df = df.copy()
    if df.empty:
        df["model"] = pd.Series(dtype="string")
        return df
    pairs = sorted(
        {(g, p) for g, p in zip(df["game"], df["train_noise"], strict=True)},
        key=lambda gp: model_sort_key(*gp),
    )
    labels = [model_label(g, p) for g, p in pairs]
    order = list(dict.fromkeys(labels))
    df["model"] = pd.Categorical(
        [model_label(g, p) for g, p in zip(df["game"], df["train_noise"], strict=True)],
        categories=order,
        ordered=True,
    )
    return df


def seed_stats(
    df: pd.DataFrame,
    keys: Sequence[str],
    values: Sequence[str],
    constants: Sequence[str] = (),
) -> pd.DataFrame:
    """Mean, sample std (ddof 1) and count over the rows of each ``keys`` group.

    Output columns: keys, ``n`` (rows in the group, i.e. seeds after ``run_level``), then
    ``<v>_mean`` and ``<v>_std`` for each value, then each constant (its first value).
    Missing keys (NA) form their own group.
    """
    keys = list(keys)
    out_cols = [*keys, "n", *[f"{v}_{s}" for v in values for s in ("mean", "std")], *constants]
    if df.empty:
        return pd.DataFrame(columns=out_cols)
    work = df[[*keys, *values, *constants]].copy()
    for v in values:
        work[v] = pd.to_numeric(work[v], errors="coerce").astype("float64")
    grouped = work.groupby(keys, dropna=False, sort=True, observed=True)
    agg: dict[str, pd.Series] = {"n": grouped.size()}
    for v in values:
        agg[f"{v}_mean"] = grouped[v].mean()
        agg[f"{v}_std"] = grouped[v].std(ddof=1)
    for c in constants:
        agg[c] = grouped[c].first()
    out = pd.DataFrame(agg).reset_index()
    out["n"] = out["n"].astype("int64")
    return out[out_cols]


def identifying(df: pd.DataFrame, values: Sequence[str]) -> list[str]:
    """Columns of ``df`` that identify a row: every column that is not a value."""
    return [c for c in df.columns if c not in set(values)]


def aggregate_over_seeds(
    df: pd.DataFrame, values: Sequence[str], constants: Sequence[str] = ()
) -> pd.DataFrame:
    """Seed statistics grouped by every identifying column except ``seed`` and ``run_id``."""
    values = [v for v in values if v in df.columns]
    constants = [c for c in constants if c in df.columns]
    keys = [
        c for c in identifying(df, [*values, *constants]) if c not in SEED_COLUMNS and c != "model"
    ]
    return seed_stats(df, keys, values, constants)


def run_level(df: pd.DataFrame, keys: Sequence[str], value: str) -> pd.DataFrame:
    """One row per (run_id, seed, keys): the mean of ``value`` over the run's rows of that
    cell (repetitions, subsets, …). NaN values are ignored."""
    cols = ["run_id", "seed", *keys]
    if df.empty:
        return pd.DataFrame(columns=[*cols, value])
    work = df[[*cols, value]].copy()
    work[value] = pd.to_numeric(work[value], errors="coerce").astype("float64")
    out = work.groupby(cols, dropna=False, sort=True, observed=True)[value].mean().reset_index()
    return out


def varying_columns(df: pd.DataFrame, candidates: Sequence[str]) -> list[str]:
    """The candidate columns of ``df`` holding more than one distinct value (NA counts)."""
    return [c for c in candidates if c in df.columns and df[c].nunique(dropna=False) > 1]


def format_cell(mean: float, std: float, digits: int = 3) -> str:
    """``0.612 ± 0.010``; the mean alone when std is undefined (one seed); empty if no mean."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)) or pd.isna(mean):
        return ""
    if std is None or pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_number(value: object) -> str:
    """Compact text for a key value (0.5, 64, 'erasure'); empty for missing."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)
