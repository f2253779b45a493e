"""Shared fixtures: small, fast configurations of the real presets."""

import os

# One Eigen thread per test process (xdist runs two); other XLA flags (e.g. --xla_cpu_max_isa
# from make test-portable) are kept.
_flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = f"{_flags} --xla_cpu_multi_thread_eigen=false".strip()
# Test processes (xdist workers, workflow jobs) share compiled XLA code through this cache.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(__file__)), ".pytest_cache", "jax"),
)

import pytest  # noqa: E402

from noisy_emcom.configs import get_config  # noqa: E402

# Small networks and faster optimisers so that learning is visible in seconds on a CPU.
# Same code paths as the paper's presets; only sizes and learning rates differ.
SMALL = {
    "speaker.lstm_size": 64,
    "listener.lstm_size": 64,
    "listener.hidden": 64,
    "speaker.optimizer.learning_rate": 1e-3,
    "listener.optimizer.learning_rate": 1e-3,
}


def small_config(preset: str, sweep: str = "debug", **overrides):
    """A paper preset with small networks; `overrides` use '__' for '.'."""
    merged = {**SMALL, **{k.replace("__", "."): v for k, v in overrides.items()}}
    return get_config(preset, sweep, merged)


@pytest.fixture
def small():
    return small_config
