"""A small synthetic feature table for tests, benchmarks and the `debug` preset.

Gaussian clusters: centres c_k ~ N(0, I_D), x_i = c_{y_i} + σ·ε_i with y_i = i mod K.
"""

from __future__ import annotations

import numpy as np


def clustered_features(
    n: int, dim: int = 32, n_clusters: int = 64, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(features [n, dim] float32, cluster labels [n] int64), deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    labels = np.arange(n) % n_clusters
    x = centres[labels] + noise * rng.standard_normal((n, dim))
    return x.astype(np.float32), labels.astype(np.int64)
