"""The tests over seeds that decide the claims (noisy_emcom.report.stats, docs/science.md)."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from noisy_emcom.report import stats

A = np.array([0.71, 0.74, 0.69, 0.73])
B = np.array([0.66, 0.70, 0.64])


def test_greater_is_welchs_one_sided_t_test():
    c = stats.compare(A, B, "greater")
    ref = sps.ttest_ind(A, B, equal_var=False, alternative="greater")
    assert c.p_support == pytest.approx(ref.pvalue, rel=1e-9)
    assert c.p_contradict == pytest.approx(1 - ref.pvalue, rel=1e-9)
    assert c.diff == pytest.approx(A.mean() - B.mean())


def test_paired_comparison_is_the_paired_t_test():
    b = A - np.array([0.02, 0.05, 0.01, 0.03])
    c = stats.compare(A, b, "greater", paired=True)
    assert c.p_support == pytest.approx(sps.ttest_rel(A, b, alternative="greater").pvalue)
    with pytest.raises(ValueError, match="same number"):
        stats.compare(A, B, "greater", paired=True)


def test_margins_shift_the_null_hypothesis():
    # Non-inferiority at margin δ is the greater-test of a + δ against b.
    c = stats.compare(B, A, "noninferior", margin=0.1)
    ref = sps.ttest_ind(B + 0.1, A, equal_var=False, alternative="greater")
    assert c.p_support == pytest.approx(ref.pvalue, rel=1e-9)
    # TOST: the larger of the two one-sided p-values.
    e = stats.compare(A, B, "equivalent", margin=0.1)
    lo = sps.ttest_ind(A + 0.1, B, equal_var=False, alternative="greater").pvalue
    hi = sps.ttest_ind(A - 0.1, B, equal_var=False, alternative="less").pvalue
    assert e.p_support == pytest.approx(max(lo, hi), rel=1e-9)
    assert e.p_contradict == pytest.approx(min(1.0, 2 * min(1 - lo, 1 - hi)), rel=1e-9)


def test_verdicts():
    rng = np.random.default_rng(0)
    far = [stats.compare(A + 0.2, A, "greater"), stats.compare(B + 0.2, B, "greater")]
    assert stats.verdict(far, 0.05) == stats.SUPPORTED
    wrong = far + [stats.compare(B, B + 0.2, "greater")]
    assert stats.verdict(wrong, 0.05) == stats.CONTRADICTED
    noise = [stats.compare(A, A + rng.normal(0, 1e-4, A.size), "greater")]
    assert stats.verdict(noise, 0.05) == stats.UNDECIDED
    one_seed = [stats.compare(A[:1] + 1, B, "greater")]
    assert not one_seed[0].testable and stats.verdict(one_seed, 0.05) == stats.UNDECIDED
    assert "fewer than 2 seeds" in one_seed[0].describe()


def test_identical_seeds_decide_by_the_sign():
    same = np.array([0.5, 0.5, 0.5])
    assert stats.compare(same + 0.1, same, "greater").p_support == 0.0
    assert stats.compare(same, same, "greater").p_support == pytest.approx(0.5)
    assert math.isnan(stats.compare(same[:1], same, "greater").p_support)
    with pytest.raises(ValueError, match="kind"):
        stats.compare(A, B, "bigger")
