"""Channels, the noise schedule and input-noise views (docs/science.md#channels-and-noise)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisy_emcom import channels

V, T = 20, 10


def tokens(b=20_000, seed=0):
    return jax.random.randint(jax.random.PRNGKey(seed), (b, T), 0, V, jnp.int32)


def test_identity_changes_nothing():
    a = tokens(100)
    out = channels.apply_channel(jax.random.PRNGKey(1), a, channels.identity(T), V)
    assert np.array_equal(out, a)


@pytest.mark.parametrize("p", [0.25, 0.5, 0.75])
def test_erasure_rate_and_symbol(p):
    a = tokens()
    out = np.asarray(channels.apply_channel(jax.random.PRNGKey(2), a, channels.erasure(p, T), V))
    erased = out == V
    n = erased.size
    assert abs(erased.mean() - p) < 4 * np.sqrt(p * (1 - p) / n)  # 4σ binomial band
    assert np.array_equal(out[~erased], np.asarray(a)[~erased])  # the rest passes untouched


@pytest.mark.parametrize("p", [0.25, 0.75])
def test_substitution_changes_tokens_at_rate_p_times_v_minus_1_over_v(p):
    a = tokens()
    out = np.asarray(
        channels.apply_channel(jax.random.PRNGKey(3), a, channels.substitution(p, T), V)
    )
    eps = p * (V - 1) / V
    changed = (out != np.asarray(a)).mean()
    assert abs(changed - eps) < 4 * np.sqrt(eps * (1 - eps) / out.size)
    assert out.max() < V  # never produces the erased symbol


def test_fixed_erasure_erases_exactly_the_positions():
    a = tokens(50)
    out = np.asarray(
        channels.apply_channel(jax.random.PRNGKey(4), a, channels.fixed_erasure([0, 3, 7], T), V)
    )
    assert np.all(out[:, [0, 3, 7]] == V)
    keep = [t for t in range(T) if t not in (0, 3, 7)]
    assert np.array_equal(out[:, keep], np.asarray(a)[:, keep])
    with pytest.raises(ValueError, match="0..9"):
        channels.fixed_erasure([10], T)


def test_ramp_is_linear_over_the_first_forty_percent():
    steps, p_max = 1000, 0.5  # S_ramp = 400
    p = [
        float(channels.erasure_schedule(s, p_max, steps, 0.4)) for s in (0, 100, 200, 399, 400, 999)
    ]
    np.testing.assert_allclose(p, [0.0, 0.125, 0.25, 0.49875, 0.5, 0.5], rtol=1e-6)
    # The paper's schedule: 750k steps, ramp 300k.
    assert float(channels.erasure_schedule(150_000, 0.5, 750_000, 0.4)) == pytest.approx(0.25)
    assert float(channels.erasure_schedule(0, 0.3, 10, 0.0)) == pytest.approx(0.3)


@settings(max_examples=25, deadline=None)
@given(
    st.floats(0, 1),
    st.floats(0, 1),
    st.lists(st.integers(0, T - 1), max_size=T),
    st.integers(0, 2**31 - 1),
)
def test_channel_output_is_always_a_valid_received_message(pe, ps, positions, seed):
    a = tokens(64, seed=1)
    params = channels.fixed_erasure(positions, T)._replace(
        erase_p=np.float32(pe), substitute_p=np.float32(ps)
    )
    out = np.asarray(channels.apply_channel(jax.random.PRNGKey(seed), a, params, V))
    assert out.shape == a.shape and out.dtype == np.int32
    assert out.min() >= 0 and out.max() <= V
    assert np.all(out[:, sorted(set(positions))] == V)


def test_input_noise_views():
    x = jax.random.normal(jax.random.PRNGKey(0), (4096, 8)) * jnp.arange(1, 9)
    v1, v2 = channels.input_noise_views(jax.random.PRNGKey(1), x, 0.0)
    assert np.array_equal(v1, x) and np.array_equal(v2, x)
    v1, v2 = channels.input_noise_views(jax.random.PRNGKey(1), x, 0.5)
    sigma = np.std(np.asarray(x), axis=0)
    np.testing.assert_allclose(np.std(np.asarray(v1 - x), axis=0), 0.5 * sigma, rtol=0.06)
    assert not np.allclose(v1, v2)  # independent noise draws
    corr = np.corrcoef(np.asarray(v1 - x)[:, 0], np.asarray(v2 - x)[:, 0])[0, 1]
    assert abs(corr) < 0.1
