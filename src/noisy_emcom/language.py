"""Language and redundancy measures (docs/tests.md): pure numpy / pandas.

Contents
- message distances: vectorised Levenshtein over many pairs of messages;
- meaning distances: 2 − 2cos for features, 2 × fraction of differing attributes;
- topographic similarity: Spearman correlation with average ranks, NaN if a list is constant;
- channel capacity, ``fano_bound`` and ``fano_bound_tight``;
- per-position and pooled token entropies, unique-message ratio;
- accuracy versus the number of erased positions A_K(n), R_K, per-position sensitivity
  Δ_K(t), weights and N_eff from message-test rows;
- the message-test subset generator and the stable setting hash h.

Nothing here uses JAX; every function is deterministic given its arguments.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------------------------
# Result-table schema (docs/tests.md#result-rows). Shared with `noisy_emcom.evaluate`.
# --------------------------------------------------------------------------------------------

IDENTIFYING_COLUMNS: tuple[str, ...] = (
    "run_id",
    "game",
    "dataset",
    "train_batch_size",
    "train_noise",
    "seed",
    "checkpoint_step",
    "test",
    "eval_batch_size",
    "channel",
    "channel_p",
    "n_masked",
    "masked_positions",
    "subset_index",
    "input_noise",
    "listener_view",
    "decoding",
    "unknown_token_policy",
    "eval_seed",
    "repetition",
    "n_epochs",
)
"""Identifying columns of every result row (docs/tests.md#result-rows); unused fields are empty."""

INT_COLUMNS: frozenset[str] = frozenset(
    {
        "train_batch_size",
        "seed",
        "checkpoint_step",
        "eval_batch_size",
        "n_masked",
        "subset_index",
        "eval_seed",
        "repetition",
        "n_epochs",
        "n_games",
        "n_correct",
        "n_pairs_per_batch",
        "n_batches",
        "n_nan_batches",
        "position",
    }
)
"""Result columns stored as (nullable) integers."""

STR_COLUMNS: frozenset[str] = frozenset(
    {
        "run_id",
        "game",
        "dataset",
        "test",
        "channel",
        "masked_positions",
        "listener_view",
        "decoding",
        "unknown_token_policy",
        "meaning",
        "message_stage",
        "measure",
    }
)
"""Result columns stored as strings."""

METRIC_COLUMNS: tuple[str, ...] = (
    "n_games",
    "n_correct",
    "accuracy",
    "accuracy_batch_std",
    "speaker_entropy",
    "listener_entropy",
    "erased_fraction",
    "capacity_bits",
    "fano_bound",
    "fano_bound_tight",
)
"""Metric columns of every accuracy row (docs/tests.md#result-rows)."""

SUBSET_COLUMNS: tuple[str, ...] = ("n_masked", "masked_positions", "subset_index")
"""Identifying columns that vary within one message test (one value per erased subset)."""


# --------------------------------------------------------------------------------------------
# Message distances
# --------------------------------------------------------------------------------------------


def levenshtein(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Edit distance between the rows of ``a`` and ``b``, vectorised over pairs.

    Args:
      a: [P, T1] integer tokens. b: [P, T2] integer tokens (row p of ``a`` is compared
        with row p of ``b``).
    Returns:
      [P] int64: the minimal number of insertions, deletions and substitutions (cost 1 each).

    Wagner–Fischer over the (T1+1)×(T2+1) table, one table row per step and vectorised over
    pairs. Within a row, the insertion recurrence D[i,j] = min(E[j], D[i,j−1] + 1) with
    E[j] = min(D[i−1,j] + 1, D[i−1,j−1] + [a_i ≠ b_j]) is solved in closed form as
    D[i,j] = j + min_{k≤j}(E[k] − k) (a running minimum), so the inner loop is numpy only.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"levenshtein: need a [P,T1] and b [P,T2], got {a.shape} and {b.shape}")
    n_pairs, t1 = a.shape
    t2 = b.shape[1]
    cols = np.arange(t2 + 1, dtype=np.int64)
    prev = np.broadcast_to(cols, (n_pairs, t2 + 1)).copy()
    for i in range(1, t1 + 1):
        cost = (a[:, i - 1 : i] != b).astype(np.int64)  # [P, T2]
        e = np.empty_like(prev)
        e[:, 0] = i
        e[:, 1:] = np.minimum(prev[:, 1:] + 1, prev[:, :-1] + cost)
        prev = np.minimum.accumulate(e - cols, axis=1) + cols
    return prev[:, t2]


def pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs i < j of 0..n−1 in row-major order: two [n(n−1)/2] int arrays."""
    return np.triu_indices(n, k=1)


def message_distances(messages: np.ndarray) -> np.ndarray:
    """Normalised edit distances d_M(i,j) = Levenshtein(m_i, m_j) / T over all pairs i < j.

    Args: messages [n, T] integer tokens (any alphabet, e.g. 0..V with V = erased).
    Returns: [n(n−1)/2] float64 in [0, 1], pairs in ``pair_indices(n)`` order.
    """
    messages = np.asarray(messages)
    if messages.ndim != 2:
        raise ValueError(f"message_distances: messages must be [n, T], got {messages.shape}")
    i, j = pair_indices(messages.shape[0])
    length = messages.shape[1]
    return levenshtein(messages[i], messages[j]).astype(np.float64) / max(length, 1)


def feature_distances(features: np.ndarray) -> np.ndarray:
    """Feature-meaning distances d_U(i,j) = ‖û_i − û_j‖² = 2 − 2·cos(u_i, u_j), pairs i < j.

    Args: features [n, D] float. A zero vector has no direction; it is kept as the zero
      vector after normalisation (cos = 0, distance 2 to everything).
    Returns: [n(n−1)/2] float64 in [0, 4].
    """
    u = np.asarray(features, dtype=np.float64)
    if u.ndim != 2:
        raise ValueError(f"feature_distances: features must be [n, D], got {u.shape}")
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    unit = u / np.where(norms > 0, norms, 1.0)
    i, j = pair_indices(u.shape[0])
    cos = np.einsum("pd,pd->p", unit[i], unit[j])
    return np.clip(2.0 - 2.0 * cos, 0.0, 4.0)


def attribute_distances(attributes: np.ndarray) -> np.ndarray:
    """Attribute-meaning distances: 2 × the fraction of differing attributes, pairs i < j.

    This is the mean over attributes of ‖onehot(a_i) − onehot(a_j)‖² (2 if they differ).
    Args: attributes [n, A] (bool or int). Returns: [n(n−1)/2] float64 in [0, 2].
    """
    a = np.asarray(attributes)
    if a.ndim != 2:
        raise ValueError(f"attribute_distances: attributes must be [n, A], got {a.shape}")
    i, j = pair_indices(a.shape[0])
    return 2.0 * np.mean(a[i] != a[j], axis=1, dtype=np.float64)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties sharing their mean rank (like
    ``scipy.stats.rankdata(x, method="average", axis=-1)``, without importing scipy.stats)."""
    x = np.asarray(x)
    n = x.shape[-1]
    order = np.argsort(x, axis=-1, kind="stable")
    ordered = np.take_along_axis(x, order, axis=-1)
    position = np.broadcast_to(np.arange(n), x.shape)
    starts = np.ones(x.shape, bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    ends = np.ones(x.shape, bool)
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, position, n - 1), -1), -1), -1)
    ranks = np.empty(x.shape, np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=-1)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation with average ranks for ties; NaN if either list is constant.

    ρ = Pearson(rank(x), rank(y)) with `average_ranks`.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman: need two equal 1-d lists, got {x.shape} and {y.shape}")
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    rx = average_ranks(x) - (x.size + 1) / 2.0
    ry = average_ranks(y) - (y.size + 1) / 2.0
    return float(np.sum(rx * ry) / math.sqrt(np.sum(rx * rx) * np.sum(ry * ry)))


def topsim(messages: np.ndarray, meanings: np.ndarray, meaning: str = "inputs") -> float:
    """Topographic similarity: Spearman(d_M, d_U) over all pairs i < j.

    Args:
      messages: [n, T] tokens. meanings: [n, D] features (``meaning="inputs"``) or [n, A]
        attributes (``meaning="attributes"``).
    Returns: float in [−1, 1], NaN when either distance list is constant (e.g. n < 3 or all
      messages equal).
    """
    messages = np.asarray(messages)
    meanings = np.asarray(meanings)
    if messages.shape[0] != meanings.shape[0]:
        raise ValueError(f"topsim: {messages.shape[0]} messages but {meanings.shape[0]} meanings")
    if meaning == "inputs":
        d_u = feature_distances(meanings)
    elif meaning == "attributes":
        d_u = attribute_distances(meanings)
    else:
        raise ValueError(f"topsim: meaning must be 'inputs' or 'attributes', got {meaning!r}")
    return spearman(message_distances(messages), d_u)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise ``spearman``: x, y [B, P] → [B] (NaN for rows where either list is constant)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"spearman_rows: need two equal [B, P] arrays, got {x.shape}, {y.shape}")
    if x.shape[1] < 2:
        return np.full(x.shape[0], np.nan)
    rx = average_ranks(x) - (x.shape[1] + 1) / 2.0
    ry = average_ranks(y) - (y.shape[1] + 1) / 2.0
    num = np.sum(rx * ry, axis=1)
    den = np.sqrt(np.sum(rx * rx, axis=1) * np.sum(ry * ry, axis=1))
    constant = np.all(x == x[:, :1], axis=1) | np.all(y == y[:, :1], axis=1)
    return np.where(constant, np.nan, num / np.where(den > 0, den, 1.0))


def batched_message_distances(messages: np.ndarray) -> np.ndarray:
    """``message_distances`` of each batch: messages [B, n, T] → [B, n(n−1)/2] (one call)."""
    messages = np.asarray(messages)
    if messages.ndim != 3:
        raise ValueError(f"batched_message_distances: need [B, n, T], got {messages.shape}")
    b, n, length = messages.shape
    i, j = pair_indices(n)
    d = levenshtein(messages[:, i].reshape(-1, length), messages[:, j].reshape(-1, length))
    return d.reshape(b, i.size).astype(np.float64) / max(length, 1)


def batched_meaning_distances(meanings: np.ndarray, meaning: str) -> np.ndarray:
    """Meaning distances of each batch: meanings [B, n, F] → [B, n(n−1)/2]."""
    meanings = np.asarray(meanings)
    if meanings.ndim != 3:
        raise ValueError(f"batched_meaning_distances: need [B, n, F], got {meanings.shape}")
    if meaning == "inputs":
        fn = feature_distances
    elif meaning == "attributes":
        fn = attribute_distances
    else:
        raise ValueError(f"meaning must be 'inputs' or 'attributes', got {meaning!r}")
    n = meanings.shape[1]
    if meanings.shape[0] == 0:
        return np.zeros((0, n * (n - 1) // 2))
    return np.stack([fn(m) for m in meanings])


# --------------------------------------------------------------------------------------------
# Capacity and Fano bounds (docs/tests.md#capacity-and-fano-bounds)
# --------------------------------------------------------------------------------------------


def binary_entropy(p: float) -> float:
    """h2(p) = −p log2 p − (1−p) log2(1−p) in bits, with 0 log 0 = 0."""
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"binary_entropy: p must be in [0, 1], got {p}")
    if p in (0.0, 1.0):
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def channel_capacity_bits(
    channel: str,
    p: float = 0.0,
    n_masked: int = 0,
    vocab_size: int = 20,
    length: int = 10,
) -> float:
    """Capacity in bits of one message (T uses of a memoryless per-symbol channel).

    - ``identity``:      C = T·log2 V
    - ``erasure``:       C = T·(1 − p)·log2 V
    - ``fixed_erasure``: C = (T − n)·log2 V        (n = ``n_masked`` positions always erased)
    - ``substitution``:  C = T·[log2 V − h2(ε) − ε·log2(V − 1)],  ε = p·(V − 1)/V
    """
    if vocab_size < 2:
        raise ValueError(f"channel_capacity_bits: vocab_size must be >= 2, got {vocab_size}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"channel_capacity_bits: p must be in [0, 1], got {p}")
    log_v = math.log2(vocab_size)
    if channel == "identity":
        return length * log_v
    if channel == "erasure":
        return length * (1.0 - p) * log_v
    if channel == "fixed_erasure":
        if not 0 <= n_masked <= length:
            raise ValueError(f"channel_capacity_bits: n_masked must be in [0, {length}]")
        return (length - n_masked) * log_v
    if channel == "substitution":
        eps = p * (vocab_size - 1) / vocab_size
        return length * (log_v - binary_entropy(eps) - eps * math.log2(vocab_size - 1))
    raise ValueError(
        "channel_capacity_bits: channel must be identity, erasure, fixed_erasure or "
        f"substitution, got {channel!r}"
    )


def fano_bound(capacity_bits: float, num_candidates: int) -> float:
    """Simple Fano bound on accuracy: min{1, (C + 1) / log2 K} (1 when K ≤ 2)."""
    if num_candidates <= 2:
        return 1.0
    return min(1.0, (capacity_bits + 1.0) / math.log2(num_candidates))


def fano_bound_tight(capacity_bits: float, num_candidates: int, iterations: int = 100) -> float:
    """Exact Fano bound on accuracy, 1 − P* (docs/tests.md#capacity-and-fano-bounds).

    P* is the smallest P_e ∈ [0, 1 − 1/K] with h2(P_e) + P_e·log2(K − 1) ≥ log2 K − C;
    P* = 0 when C ≥ log2 K. The left side increases on that interval (from 0 to log2 K), so
    P* is found by bisection (``iterations`` halvings; 100 reach float precision).
    """
    k = int(num_candidates)
    if k < 2:
        return 1.0
    target = math.log2(k) - capacity_bits
    if target <= 0.0:
        return 1.0

    def fano_lhs(pe: float) -> float:
        return binary_entropy(pe) + pe * math.log2(k - 1)

    lo, hi = 0.0, 1.0 - 1.0 / k
    if fano_lhs(hi) < target:  # only when C < 0, which no channel produces
        return 1.0 / k
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if fano_lhs(mid) >= target:
            hi = mid
        else:
            lo = mid
    return 1.0 - hi


# --------------------------------------------------------------------------------------------
# Entropies and uniqueness (docs/tests.md#token-entropy-and-uniqueness)
# --------------------------------------------------------------------------------------------


def _entropy_bits(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    q = counts / counts.sum()
    return float(-(q * np.log2(q)).sum()) + 0.0


def position_entropies(messages: np.ndarray) -> np.ndarray:
    """Per-position token entropy H_t = −Σ_v q_t(v) log2 q_t(v) (bits) over n messages.

    Args: messages [n, T] non-negative integer tokens. Returns: [T] float64.
    """
    messages = np.asarray(messages)
    if messages.ndim != 2 or messages.shape[0] == 0:
        raise ValueError(f"position_entropies: need messages [n>0, T], got {messages.shape}")
    return np.array([_entropy_bits(np.bincount(col)) for col in messages.T.astype(np.int64)])


def mean_position_entropy(messages: np.ndarray) -> float:
    """H̄ = (1/T)·Σ_t H_t in bits (maximum log2 V)."""
    return float(position_entropies(messages).mean())


def unigram_entropy(messages: np.ndarray) -> float:
    """Entropy (bits) of the token frequencies pooled over all positions of all messages."""
    messages = np.asarray(messages)
    if messages.size == 0:
        raise ValueError("unigram_entropy: no tokens")
    return _entropy_bits(np.bincount(messages.reshape(-1).astype(np.int64)))


def unique_message_ratio(messages: np.ndarray) -> float:
    """U = (number of distinct messages) / n for messages [n, T]."""
    messages = np.asarray(messages)
    if messages.ndim != 2 or messages.shape[0] == 0:
        raise ValueError(f"unique_message_ratio: need messages [n>0, T], got {messages.shape}")
    return float(np.unique(messages, axis=0).shape[0] / messages.shape[0])


# --------------------------------------------------------------------------------------------
# Message-test subsets and the setting hash (docs/tests.md#message-test, #common-protocol)
# --------------------------------------------------------------------------------------------


def format_positions(positions: Sequence[int]) -> str:
    """0-based positions as a result-file string: (0, 3, 7) → ``"0-3-7"``; () → ``""``."""
    return "-".join(str(int(t)) for t in positions)


def parse_positions(text: object) -> tuple[int, ...]:
    """Inverse of ``format_positions`` (empty string, None or NaN → ())."""
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
        return ()
    if isinstance(text, (int, float, np.integer, np.floating)):  # "3" read back as a number
        return (int(text),)
    return tuple(int(t) for t in str(text).split("-"))


def mask_subsets(
    length: int, mask_counts: Sequence[int], max_subsets: int, mask_seed: int
) -> list[tuple[int, int, tuple[int, ...]]]:
    """Erased-position subsets of the message test (docs/tests.md#message-test).

    For each n in ``mask_counts``: all C(T, n) subsets in lexicographic order if
    C(T, n) ≤ ``max_subsets``; otherwise ``max_subsets`` distinct subsets drawn with
    ``numpy.random.default_rng([mask_seed, n])``: each draw is
    ``sorted(rng.choice(T, size=n, replace=False))``, kept in draw order, a duplicate of an
    earlier draw is discarded and redrawn.

    Returns: list of (n, subset_index, positions) with positions a sorted tuple of 0-based ints
      and subset_index counting from 0 within each n. With T = 10, counts 0..5 and at most 10
      subsets: 1 + 10 + 4 × 10 = 51 entries.
    """
    if max_subsets < 1:
        raise ValueError(f"mask_subsets: max_subsets must be >= 1, got {max_subsets}")
    out: list[tuple[int, int, tuple[int, ...]]] = []
    for n in mask_counts:
        n = int(n)
        if not 0 <= n <= length:
            raise ValueError(f"mask_subsets: mask count {n} outside [0, {length}]")
        if math.comb(length, n) <= max_subsets:
            subsets = list(itertools.combinations(range(length), n))
        else:
            rng = np.random.default_rng([int(mask_seed), n])
            subsets, seen = [], set()
            while len(subsets) < max_subsets:
                draw = tuple(sorted(int(t) for t in rng.choice(length, size=n, replace=False)))
                if draw not in seen:
                    seen.add(draw)
                    subsets.append(draw)
        out.extend((n, index, tuple(s)) for index, s in enumerate(subsets))
    return out


HASH_FIELDS: tuple[str, ...] = (
    "test",
    "eval_batch_size",
    "channel",
    "channel_p",
    "masked_positions",
    "input_noise",
    "listener_view",
)
"""Fields of a setting that enter its hash h; model identity and decoding do not."""


def setting_hash(setting: Mapping[str, object]) -> int:
    """Stable 31-bit hash h of a test setting (docs/tests.md#common-protocol).

    h = int.from_bytes(SHA-256(json)[:4], "big") & 0x7FFFFFFF, where json is
    ``json.dumps({k: setting[k] for k in HASH_FIELDS}, sort_keys=True, separators=(",", ":"))``.
    Every field of ``HASH_FIELDS`` must be present (use None for unused fields); other keys are
    ignored. Values must be JSON scalars (str, int, float, None).
    """
    missing = [k for k in HASH_FIELDS if k not in setting]
    if missing:
        raise KeyError(f"setting_hash: missing field(s) {missing}")
    canonical = json.dumps(
        {k: setting[k] for k in HASH_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# --------------------------------------------------------------------------------------------
# Redundancy summaries from message-test rows (docs/tests.md#accuracy-versus-erased-positions)
# --------------------------------------------------------------------------------------------


def _group_columns(df: pd.DataFrame, by: Sequence[str] | None) -> list[str]:
    if by is not None:
        missing = [c for c in by if c not in df.columns]
        if missing:
            raise KeyError(f"message-test rows lack grouping column(s) {missing}")
        return list(by)
    skip = set(SUBSET_COLUMNS) | {"channel", "channel_p"}
    return [c for c in IDENTIFYING_COLUMNS if c in df.columns and c not in skip]


def _check_columns(df: pd.DataFrame, needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: message-test rows lack column(s) {missing}")


def accuracy_vs_erased(df: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """A_K(n): mean, min and max accuracy over the subsets with |P| = n.

    Args:
      df: message-test rows with at least ``n_masked`` and ``accuracy``, plus the grouping
        columns. by: columns identifying one curve (default: every identifying column present
        in ``df`` except the subset columns and ``channel``/``channel_p``).
    Returns: one row per (group, n): the group columns, ``n_masked``, ``n_subsets``,
      ``accuracy_mean``, ``accuracy_min``, ``accuracy_max`` and ``accuracy_norm`` =
      A_K(n)/A_K(0) (NaN if the group has no n = 0 row or A_K(0) = 0).
    """
    _check_columns(df, ["n_masked", "accuracy"], "accuracy_vs_erased")
    group = _group_columns(df, by)
    keys = [*group, "n_masked"]
    out = (
        df.groupby(keys, dropna=False, sort=True)["accuracy"]
        .agg(n_subsets="count", accuracy_mean="mean", accuracy_min="min", accuracy_max="max")
        .reset_index()
    )
    base = out.loc[out["n_masked"] == 0, [*group, "accuracy_mean"]]
    base = base.rename(columns={"accuracy_mean": "_a0"})
    if group:
        out = out.merge(base, on=group, how="left")
    else:
        out["_a0"] = base["_a0"].iloc[0] if len(base) else np.nan
    a0 = out["_a0"].astype(float)
    out["accuracy_norm"] = (out["accuracy_mean"] / a0).where(a0 > 0)
    return out.drop(columns="_a0")


def redundancy_summary(df: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """R_K = mean over n ≥ 1 of A_K(n)/A_K(0) (n = 1..5 with the default mask counts).

    Returns one row per group: the group columns and ``redundancy`` (1 = erasing positions
    costs nothing; NaN when A_K(0) is 0 or absent).
    """
    curve = accuracy_vs_erased(df, by)
    group = _group_columns(df, by)
    erased = curve[curve["n_masked"] >= 1]
    if not group:
        return pd.DataFrame({"redundancy": [erased["accuracy_norm"].mean()]})
    return (
        erased.groupby(group, dropna=False, sort=True)["accuracy_norm"]
        .mean()
        .rename("redundancy")
        .reset_index()
    )


def sensitivity_weights(delta: np.ndarray) -> np.ndarray:
    """w_t = max(Δ_t, 0) / Σ_s max(Δ_s, 0); all NaN if no position matters."""
    pos = np.maximum(np.asarray(delta, dtype=np.float64), 0.0)
    total = pos.sum()
    if not total > 0:
        return np.full(pos.shape, np.nan)
    return pos / total


def effective_positions(delta: np.ndarray) -> float:
    """N_eff = 2^{H2(w)} with w = ``sensitivity_weights(delta)`` (NaN if no position matters)."""
    w = sensitivity_weights(delta)
    if np.isnan(w).any():
        return float("nan")
    w = w[w > 0]
    return float(2.0 ** (-(w * np.log2(w)).sum()))


def position_sensitivity(
    df: pd.DataFrame, length: int, by: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per-position erasure sensitivity Δ_K(t) = A_K(∅) − acc_K({t}) (docs/tests.md).

    Args:
      df: message-test rows with ``n_masked``, ``masked_positions`` (``"3"`` for {3}) and
        ``accuracy``. length: T. by: as ``accuracy_vs_erased``.
    Returns: one row per (group, position t = 0..T−1): the group columns, ``position``,
      ``delta``, ``weight`` (w_t) and ``n_eff`` (N_eff of the group, repeated). Δ is NaN
      where the group lacks the empty subset or the singleton {t}.
    """
    _check_columns(df, ["n_masked", "masked_positions", "accuracy"], "position_sensitivity")
    group = _group_columns(df, by)
    rows = []
    grouped = df.groupby(group, dropna=False, sort=True) if group else [((), df)]
    for key, part in grouped:
        key = key if isinstance(key, tuple) else (key,)
        a0 = part.loc[part["n_masked"] == 0, "accuracy"]
        a0 = float(a0.mean()) if len(a0) else float("nan")
        delta = np.full(length, np.nan)
        singles = part[part["n_masked"] == 1]
        for pos_text, acc in zip(singles["masked_positions"], singles["accuracy"], strict=True):
            (t,) = parse_positions(pos_text)
            delta[t] = a0 - float(acc)
        complete = not np.isnan(delta).any()
        weights = sensitivity_weights(delta) if complete else np.full(length, np.nan)
        n_eff = effective_positions(delta) if complete else float("nan")
        for t in range(length):
            rows.append(
                {
                    **dict(zip(group, key, strict=True)),
                    "position": t,
                    "delta": delta[t],
                    "weight": weights[t],
                    "n_eff": n_eff,
                }
            )
    return pd.DataFrame(rows, columns=[*group, "position", "delta", "weight", "n_eff"])
