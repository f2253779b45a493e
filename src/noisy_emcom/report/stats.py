"""Tests over training seeds that decide the claims (docs/science.md#how-claims-are-decided).

A comparison of a statement about d = mean(a) − mean(b) (a, b: run-level values, one per
training seed) gives two one-sided p-values from Student's t with Welch's standard error
se = √(s_a²/n_a + s_b²/n_b) and Welch–Satterthwaite degrees of freedom (or, for values
paired by run, the t of the per-run differences, n − 1 degrees of freedom):

    statement     supports it (rejects)                 contradicts it (rejects)
    greater       d ≤ 0:   1 − F((d)/se)               d ≥ 0:   F(d/se)
    noninferior   d ≤ −δ:  1 − F((d+δ)/se)             d ≥ −δ:  F((d+δ)/se)
    equivalent    |d| ≥ δ: max(1 − F((d+δ)/se),         |d| ≤ δ: 2·min(F((d+δ)/se),
                          F((d−δ)/se))  (TOST)                       1 − F((d−δ)/se))

F is the t CDF. A claim made of m comparisons is *supported* when every comparison's
support p-value is below α (an intersection-union test: level α without correction),
*contradicted* when one contradiction p-value is below α/m (Bonferroni), and *undecided*
otherwise, or when a group has fewer than two seeds (no variance to test with).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats as sps

KINDS = ("greater", "noninferior", "equivalent")


@dataclasses.dataclass(frozen=True)
class Comparison:
    kind: str
    diff: float  # mean(a) − mean(b), or the mean paired difference
    se: float
    df: float
    margin: float
    n: tuple[int, int]
    p_support: float  # NaN when untestable (a group with < 2 seeds)
    p_contradict: float

    @property
    def testable(self) -> bool:
        return not math.isnan(self.p_support)

    def describe(self) -> str:
        if not self.testable:
            return f"d = {self.diff:+.3f}, fewer than 2 seeds in a group"
        margin = f", δ = {self.margin:g}" if self.kind != "greater" else ""
        return (
            f"d = {self.diff:+.3f} ± {self.se:.3f} (se, df {self.df:.1f}{margin}); "
            f"p(support) = {_p(self.p_support)}, p(contradict) = {_p(self.p_contradict)}"
        )


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    va, vb = np.var(a, ddof=1) / a.size, np.var(b, ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return float(np.mean(a) - np.mean(b)), 0.0, float(a.size + b.size - 2)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return float(np.mean(a) - np.mean(b)), se, float(df)


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    d = a - b
    return float(np.mean(d)), float(np.std(d, ddof=1) / math.sqrt(d.size)), float(d.size - 1)


def _cdf(x: float, df: float) -> float:
    """t CDF, with se = 0 read as an exact difference (x = ±inf, or 0/0 → 0.5)."""
    if math.isnan(x):
        return 0.5
    return float(sps.t.cdf(x, df))


def _ratio(num: float, se: float) -> float:
    if se > 0:
        return num / se
    return math.copysign(math.inf, num) if num != 0 else math.nan


def compare(a, b, kind: str, margin: float = 0.0, paired: bool = False) -> Comparison:
    """The comparison of `kind` (KINDS) between run-level values a and b (docs above)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    a, b = np.asarray(a, float), np.asarray(b, float)
    if paired and a.shape != b.shape:
        raise ValueError("paired values need the same number of runs")
    n = (int(a.size), int(b.size))
    if min(n) < 2:
        diff = float(np.mean(a) - np.mean(b)) if min(n) else math.nan
        return Comparison(kind, diff, math.nan, math.nan, margin, n, math.nan, math.nan)
    diff, se, df = (_paired if paired else _welch)(a, b)
    lower = _cdf(_ratio(diff + margin, se), df)  # F((d+δ)/se)
    upper = _cdf(_ratio(diff - margin, se), df)  # F((d−δ)/se)
    if kind == "greater":
        centre = _cdf(_ratio(diff, se), df)
        support, contradict = 1 - centre, centre
    elif kind == "noninferior":
        support, contradict = 1 - lower, lower
    else:
        support = max(1 - lower, upper)
        contradict = min(1.0, 2 * min(lower, 1 - upper))
    return Comparison(kind, diff, se, df, margin, n, support, contradict)


SUPPORTED, CONTRADICTED, UNDECIDED = "supported", "contradicted", "undecided (needs more seeds)"


def verdict(comparisons: list[Comparison], alpha: float) -> str:
    """supported / contradicted / undecided for the conjunction of `comparisons` (docs above)."""
    m = len(comparisons)
    if any(c.testable and c.p_contradict < alpha / m for c in comparisons):
        return CONTRADICTED
    if all(c.testable and c.p_support < alpha for c in comparisons):
        return SUPPORTED
    return UNDECIDED
