"""Tests of noisy_emcom.language: distances, topsim, capacity/Fano, entropies, subsets, hash."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from noisy_emcom import language as lang


def reference_levenshtein(a, b):
    """Textbook O(T1·T2) dynamic programme on Python sequences."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            substitute = d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, substitute)
    return d[len(a)][len(b)]


# ------------------------------------------------------------------ Levenshtein


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("abc", "abc", 0),
        ("abc", "", 3),
        ("", "", 0),
        ("abcd", "bcda", 2),  # rotation: one deletion + one insertion
        ("aaaa", "bbbb", 4),
    ],
)
def test_levenshtein_hand_cases(a, b, expected):
    x = np.array([[ord(c) for c in a]], dtype=np.int64).reshape(1, len(a))
    y = np.array([[ord(c) for c in b]], dtype=np.int64).reshape(1, len(b))
    assert lang.levenshtein(x, y).tolist() == [expected]


def test_message_distances_pairs_and_normalisation():
    m = np.array([[0, 1, 2, 3], [0, 1, 2, 4], [3, 2, 1, 0]])
    d = lang.message_distances(m)
    # pairs (0,1), (0,2), (1,2)
    assert d.tolist() == pytest.approx([1 / 4, 4 / 4, 4 / 4])


tokens = st.lists(st.integers(0, 3), min_size=6, max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.lists(tokens, min_size=3, max_size=3))
def test_levenshtein_matches_reference_and_is_a_metric(msgs):
    a, b, c = (np.array([m]) for m in msgs)
    dab, dba = lang.levenshtein(a, b)[0], lang.levenshtein(b, a)[0]
    dac, dbc = lang.levenshtein(a, c)[0], lang.levenshtein(b, c)[0]
    assert dab == reference_levenshtein(msgs[0], msgs[1])
    assert dab == dba  # symmetry
    assert dac <= dab + dbc  # triangle inequality
    hamming = sum(x != y for x, y in zip(msgs[0], msgs[1], strict=True))
    assert 0 <= dab <= hamming <= 6  # bounds
    assert (dab == 0) == (msgs[0] == msgs[1])


def test_levenshtein_vectorised_over_many_pairs():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(200, 10))
    b = rng.integers(0, 4, size=(200, 10))
    got = lang.levenshtein(a, b)
    want = [reference_levenshtein(list(x), list(y)) for x, y in zip(a, b, strict=True)]
    assert got.tolist() == want


# ------------------------------------------------------------------ topsim


def compositional_language():
    """3 attributes × 4 values, all 64 objects; each attribute is said twice, position t in
    its own alphabet (4t .. 4t+3), so the edit distance equals the Hamming distance."""
    objects = np.array(list(itertools.product(range(4), repeat=3)))
    messages = np.concatenate([objects, objects], axis=1) + 4 * np.arange(6)  # T = 6
    onehot = np.concatenate([np.eye(4)[objects[:, k]] for k in range(3)], axis=1)
    return objects, messages, onehot


def test_topsim_perfect_compositional_language_is_one():
    objects, messages, onehot = compositional_language()
    assert lang.topsim(messages, onehot, "inputs") == pytest.approx(1.0)
    assert lang.topsim(messages, objects, "attributes") == pytest.approx(1.0)


def test_topsim_random_language_is_near_zero():
    objects, _, onehot = compositional_language()
    rng = np.random.default_rng(1)
    messages = rng.integers(0, 20, size=(64, 10))
    assert abs(lang.topsim(messages, onehot, "inputs")) < 0.1


def test_topsim_matches_direct_scipy_computation():
    rng = np.random.default_rng(2)
    messages = rng.integers(0, 3, size=(12, 5))
    features = rng.normal(size=(12, 7))
    d_m, d_u = [], []
    for i, j in itertools.combinations(range(12), 2):
        d_m.append(reference_levenshtein(list(messages[i]), list(messages[j])) / 5)
        cos = features[i] @ features[j] / np.linalg.norm(features[i]) / np.linalg.norm(features[j])
        d_u.append(2 - 2 * cos)
    expected = stats.spearmanr(d_m, d_u).statistic
    assert lang.topsim(messages, features) == pytest.approx(expected, abs=1e-12)
    attrs = rng.integers(0, 2, size=(12, 4)).astype(bool)
    d_a = [2 * np.mean(attrs[i] != attrs[j]) for i, j in itertools.combinations(range(12), 2)]
    expected = stats.spearmanr(d_m, d_a).statistic
    assert lang.topsim(messages, attrs, "attributes") == pytest.approx(expected, abs=1e-12)


def test_batched_topsim_matches_per_batch():
    rng = np.random.default_rng(4)
    messages = rng.integers(0, 3, size=(5, 9, 4))
    messages[2] = 1  # a batch of constant messages: NaN
    features = rng.normal(size=(5, 9, 6))
    d_m = lang.batched_message_distances(messages)
    d_u = lang.batched_meaning_distances(features, "inputs")
    got = lang.spearman_rows(d_m, d_u)
    want = [lang.topsim(m, f) for m, f in zip(messages, features, strict=True)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert math.isnan(got[2])


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.int8, st.tuples(st.integers(1, 4), st.integers(1, 12)), elements=st.integers(-3, 3))
)
def test_average_ranks_equal_scipy_rankdata(x):
    """Ties (small integer values) share their mean rank, row by row, as in scipy."""
    np.testing.assert_array_equal(lang.average_ranks(x), stats.rankdata(x, axis=1))
    np.testing.assert_array_equal(lang.average_ranks(x[0]), stats.rankdata(x[0]))


def test_average_ranks_by_hand():
    np.testing.assert_array_equal(lang.average_ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1, 3.5, 2])


def test_topsim_nan_when_constant():
    messages = np.zeros((10, 4), dtype=int)
    features = np.random.default_rng(3).normal(size=(10, 3))
    assert math.isnan(lang.topsim(messages, features))
    assert math.isnan(lang.spearman(np.array([1.0, 2.0]), np.array([3.0, 3.0])))


def test_topsim_rejects_unknown_meaning():
    with pytest.raises(ValueError, match="meaning"):
        lang.topsim(np.zeros((3, 2), int), np.zeros((3, 2)), "labels")


# ------------------------------------------------------------------ capacity and Fano


def test_capacity_hand_values():
    log_v = math.log2(20)
    assert lang.channel_capacity_bits("identity") == pytest.approx(10 * log_v)
    assert lang.channel_capacity_bits("erasure", 0.5) == pytest.approx(5 * log_v)
    assert lang.channel_capacity_bits("fixed_erasure", n_masked=3) == pytest.approx(7 * log_v)
    # substitution with p = 1: ε = 19/20, the output is uniform: capacity 0
    assert lang.channel_capacity_bits("substitution", 1.0) == pytest.approx(0.0, abs=1e-12)
    assert lang.channel_capacity_bits("substitution", 0.0) == pytest.approx(10 * log_v)
    assert lang.channel_capacity_bits("identity", vocab_size=2, length=3) == 3.0
    with pytest.raises(ValueError, match="channel"):
        lang.channel_capacity_bits("gaussian")


@pytest.mark.parametrize(
    "channel, p, capacity",
    [
        ("erasure", 0.25, 32.41),
        ("erasure", 0.5, 21.61),
        ("erasure", 0.75, 10.80),
        ("substitution", 0.25, 25.22),
        ("substitution", 0.5, 13.06),
        ("substitution", 0.75, 4.30),
    ],
)
def test_capacity_reference_table(channel, p, capacity):
    assert lang.channel_capacity_bits(channel, p) == pytest.approx(capacity, abs=0.005)


@pytest.mark.parametrize(
    "channel, p, simple, tight",
    [
        ("erasure", 0.75, (1, 1, 1, 0.984), (1, 1, 1, 0.931)),
        ("substitution", 0.75, (0.883, 0.662, 0.530, 0.442), (0.827, 0.653, 0.529, 0.441)),
    ],
)
def test_fano_reference_table(channel, p, simple, tight):
    c = lang.channel_capacity_bits(channel, p)
    assert lang.fano_bound(c, 16) == 1.0
    assert lang.fano_bound_tight(c, 16) == 1.0
    for k, s, t in zip((64, 256, 1024, 4096), simple, tight, strict=True):
        assert lang.fano_bound(c, k) == pytest.approx(s, abs=5e-4)
        assert lang.fano_bound_tight(c, k) == pytest.approx(t, abs=5e-4)


def test_fano_bounds_everywhere_one_for_large_capacity():
    for channel, p, n in [
        ("identity", 0, 0),
        ("erasure", 0.5, 0),
        ("substitution", 0.5, 0),
        ("fixed_erasure", 0, 5),
    ]:
        c = lang.channel_capacity_bits(channel, p, n)
        assert c >= 13.05
        for k in (16, 64, 256, 1024, 4096):
            assert lang.fano_bound(c, k) == 1.0
            assert lang.fano_bound_tight(c, k) == 1.0


def test_fano_tight_solves_the_equation_and_is_below_simple():
    for c in (0.0, 0.5, 2.0, 5.0):
        k = 256
        acc = lang.fano_bound_tight(c, k)
        pe = 1 - acc
        lhs = lang.binary_entropy(pe) + pe * math.log2(k - 1)
        assert lhs == pytest.approx(math.log2(k) - c, abs=1e-9)
        assert acc <= lang.fano_bound(c, k) + 1e-12
    assert lang.fano_bound_tight(0.0, 64) == pytest.approx(1 / 64)  # no information: chance


# ------------------------------------------------------------------ entropies


def test_entropies_and_uniqueness():
    m = np.array([[0, 0, 1], [0, 1, 1], [0, 2, 1], [0, 3, 1]])
    assert lang.position_entropies(m).tolist() == pytest.approx([0.0, 2.0, 0.0])
    assert lang.mean_position_entropy(m) == pytest.approx(2 / 3)
    # pooled counts: 0 ×5, 1 ×5, 2 ×1, 3 ×1 over 12 tokens
    q = np.array([5, 5, 1, 1]) / 12
    assert lang.unigram_entropy(m) == pytest.approx(-(q * np.log2(q)).sum())
    assert lang.unique_message_ratio(m) == 1.0
    assert lang.unique_message_ratio(np.array([[1, 2], [1, 2], [2, 1], [1, 2]])) == 0.5


# ------------------------------------------------------------------ subsets and hash


def test_mask_subsets_counts_and_contents():
    subsets = lang.mask_subsets(10, (0, 1, 2, 3, 4, 5), 10, 42)
    assert len(subsets) == 51
    by_n = {n: [s for m, _, s in subsets if m == n] for n in range(6)}
    assert [len(by_n[n]) for n in range(6)] == [1, 10, 10, 10, 10, 10]
    assert by_n[0] == [()]
    assert by_n[1] == [(t,) for t in range(10)]
    for n in range(2, 6):
        assert len(set(by_n[n])) == 10
        assert all(len(s) == n and list(s) == sorted(set(s)) for s in by_n[n])
        assert all(0 <= t < 10 for s in by_n[n] for t in s)
    assert [i for m, i, _ in subsets if m == 3] == list(range(10))


def test_mask_subsets_deterministic_and_seeded():
    a = lang.mask_subsets(10, (0, 1, 2, 3, 4, 5), 10, 42)
    assert a == lang.mask_subsets(10, (0, 1, 2, 3, 4, 5), 10, 42)
    assert a != lang.mask_subsets(10, (0, 1, 2, 3, 4, 5), 10, 43)
    # the stream of n is independent of the other counts requested
    assert [s for s in a if s[0] == 4] == lang.mask_subsets(10, (4,), 10, 42)
    # draw order: first draws of default_rng([42, 2]), sorted, duplicates skipped
    rng = np.random.default_rng([42, 2])
    first = tuple(sorted(int(t) for t in rng.choice(10, size=2, replace=False)))
    assert [s for n, _, s in a if n == 2][0] == first
    # all subsets when C(T, n) is small enough
    assert len(lang.mask_subsets(4, (2,), 10, 0)) == 6


def test_positions_round_trip():
    assert lang.format_positions((0, 3, 7)) == "0-3-7"
    assert lang.format_positions(()) == ""
    assert lang.parse_positions("0-3-7") == (0, 3, 7)
    assert lang.parse_positions("") == () and lang.parse_positions(float("nan")) == ()
    assert lang.parse_positions(3.0) == (3,) and lang.parse_positions(4) == (4,)


def test_setting_hash_stable_and_31_bit():
    setting = {
        "test": "testchannel",
        "eval_batch_size": 16,
        "channel": "erasure",
        "channel_p": 0.25,
        "masked_positions": None,
        "input_noise": None,
        "listener_view": None,
    }
    h = lang.setting_hash(setting)
    assert 0 <= h < 2**31
    assert h == lang.setting_hash(dict(reversed(list(setting.items()))) | {"decoding": "greedy"})
    assert h != lang.setting_hash(setting | {"channel_p": 0.5})
    import hashlib
    import json

    digest = hashlib.sha256(
        json.dumps(setting, sort_keys=True, separators=(",", ":")).encode()
    ).digest()
    assert h == int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    with pytest.raises(KeyError, match="listener_view"):
        lang.setting_hash({k: v for k, v in setting.items() if k != "listener_view"})


# ------------------------------------------------------------------ redundancy summaries


def message_rows(acc0, singles, by_n):
    """Message-test rows of one model at one K: A(∅) = acc0, singleton accuracies, and
    lists of subset accuracies for n >= 2."""
    rows = [
        {
            "run_id": "m",
            "eval_batch_size": 16,
            "decoding": "sample",
            "n_masked": 0,
            "masked_positions": "",
            "subset_index": 0,
            "accuracy": acc0,
        }
    ]
    for t, a in enumerate(singles):
        rows.append(
            {
                "run_id": "m",
                "eval_batch_size": 16,
                "decoding": "sample",
                "n_masked": 1,
                "masked_positions": str(t),
                "subset_index": t,
                "accuracy": a,
            }
        )
    for n, accs in by_n.items():
        for i, a in enumerate(accs):
            rows.append(
                {
                    "run_id": "m",
                    "eval_batch_size": 16,
                    "decoding": "sample",
                    "n_masked": n,
                    "masked_positions": "-".join(map(str, range(n))),
                    "subset_index": i,
                    "accuracy": a,
                }
            )
    return pd.DataFrame(rows)


def test_accuracy_vs_erased_and_redundancy():
    df = message_rows(0.8, [0.8, 0.4] + [0.8] * 8, {2: [0.4, 0.8, 0.6]})
    curve = lang.accuracy_vs_erased(df)
    assert list(curve["n_masked"]) == [0, 1, 2]
    row1 = curve[curve["n_masked"] == 1].iloc[0]
    assert row1["accuracy_mean"] == pytest.approx(0.76)
    assert (row1["accuracy_min"], row1["accuracy_max"]) == (0.4, 0.8)
    assert row1["accuracy_norm"] == pytest.approx(0.95)
    row2 = curve[curve["n_masked"] == 2].iloc[0]
    assert row2["n_subsets"] == 3 and row2["accuracy_norm"] == pytest.approx(0.75)
    r = lang.redundancy_summary(df)
    assert r["redundancy"].iloc[0] == pytest.approx((0.95 + 0.75) / 2)


def test_position_sensitivity_and_n_eff():
    # only position 1 matters: N_eff = 1
    df = message_rows(0.8, [0.8, 0.4] + [0.8] * 8, {})
    sens = lang.position_sensitivity(df, 10)
    assert sens["delta"].tolist() == pytest.approx([0, 0.4] + [0] * 8)
    assert sens["weight"].tolist() == pytest.approx([0, 1] + [0] * 8)
    assert sens["n_eff"].iloc[0] == pytest.approx(1.0)
    # every position matters equally: N_eff = T
    df = message_rows(0.9, [0.5] * 10, {})
    assert lang.position_sensitivity(df, 10)["n_eff"].iloc[0] == pytest.approx(10.0)
    # nothing matters: NaN
    assert math.isnan(lang.effective_positions(np.array([0.0, -0.1, 0.0])))
    assert lang.effective_positions(np.array([1.0, 1.0, 0.0, -2.0])) == pytest.approx(2.0)
