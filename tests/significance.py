"""Thresholds of the learning tests, from tests of the null hypothesis at ALPHA.

A learning test passes when its null hypothesis ("at chance", "no better than the other game")
is rejected at ALPHA = 1e-4 (one-sided), so a model that learnt nothing fails it with
probability at most 1e-4. Each test's docstring gives the figure it observed, the threshold,
and the margin between them.

`fixture_seed()` shifts the seeds of the fixtures' training runs (`NOISY_EMCOM_TEST_SEED`, default
0), so that `make test-portable` can check that the margins hold for other trajectories too.
"""

import math
import os

from scipy import stats

ALPHA = 1e-4
Z_ALPHA = float(stats.norm.isf(ALPHA))  # 3.72


def fixture_seed() -> int:
    return int(os.environ.get("NOISY_EMCOM_TEST_SEED", "0"))


def binomial_threshold(n: int, p0: float, alpha: float = ALPHA) -> int:
    """Smallest k with P(X >= k) <= alpha for X ~ Binomial(n, p0): k or more successes in n
    independent trials reject "success probability <= p0"."""
    k = int(stats.binom.isf(alpha, n, p0)) + 1
    assert stats.binom.sf(k - 1, n, p0) <= alpha < stats.binom.sf(k - 2, n, p0)
    return k


def proportion_z(x1: int, n1: int, x2: int, n2: int) -> float:
    """z statistic of p1 > p2 (unpooled standard error); reject p1 <= p2 when z > Z_ALPHA."""
    p1, p2 = x1 / n1, x2 / n2
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    if se > 0:
        return (p1 - p2) / se
    return 0.0 if p1 == p2 else math.copysign(math.inf, p1 - p2)


def report(name: str, observed: float, threshold: float) -> None:
    """One `FIGURE` line per learning assertion, printed and, when `NOISY_EMCOM_FIGURES` names
    a file, appended to it (`make test-portable` collects them from the xdist workers)."""
    line = f"FIGURE {name}: observed {observed:.3f}, threshold {threshold:.3f}, "
    line += f"margin {observed - threshold:+.3f}"
    print(line)
    if os.environ.get("NOISY_EMCOM_FIGURES"):
        with open(os.environ["NOISY_EMCOM_FIGURES"], "a") as f:
            f.write(line + "\n")
