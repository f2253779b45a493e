"""Channels on messages and noise on inputs (docs/science.md#channels-and-noise). Every
parameter is a traced array, so changing p or the masked positions never recompiles.

One parametrised channel covers every case: erasure with probability `erase_p`, then
substitution with probability `substitute_p`, then fixed erasure of the positions in `mask`.
The erased symbol is id V (one past the last real symbol).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ChannelParams(NamedTuple):
    erase_p: jax.Array  # scalar, probability of erasing each token
    substitute_p: jax.Array  # scalar, probability of replacing a token by a uniform symbol
    mask: jax.Array  # [T] bool, positions always erased


def identity(length: int) -> ChannelParams:
    return ChannelParams(np.float32(0.0), np.float32(0.0), np.zeros(length, bool))


def erasure(p: float, length: int) -> ChannelParams:
    return identity(length)._replace(erase_p=np.float32(p))


def substitution(p: float, length: int) -> ChannelParams:
    return identity(length)._replace(substitute_p=np.float32(p))


def fixed_erasure(positions: Iterable[int], length: int) -> ChannelParams:
    mask = np.zeros(length, bool)
    positions = list(positions)
    if any(not 0 <= t < length for t in positions):
        raise ValueError(f"masked positions {positions} must lie in 0..{length - 1}")
    mask[positions] = True
    return identity(length)._replace(mask=mask)


def apply_channel(key, tokens, params: ChannelParams, vocab_size: int):
    """tokens [B,T] in 0..V−1 → received [B,T] in 0..V (V = erased).

    ã = V if u₁ < erase_p; else s ~ U{0..V−1} if u₂ < substitute_p; else a; then V on mask.
    """
    k_erase, k_sub_u, k_sub_s = jax.random.split(key, 3)
    erased = jax.random.uniform(k_erase, tokens.shape) < params.erase_p
    substituted = jax.random.uniform(k_sub_u, tokens.shape) < params.substitute_p
    symbols = jax.random.randint(k_sub_s, tokens.shape, 0, vocab_size, dtype=tokens.dtype)
    out = jnp.where(substituted, symbols, tokens)
    out = jnp.where(erased | params.mask[None, :], vocab_size, out)
    return out.astype(tokens.dtype)


def erasure_schedule(step, p_max: float, training_steps: int, ramp_fraction: float):
    """p(s) = p_max · min(s / S_ramp, 1), S_ramp = ⌊ramp_fraction · training_steps⌋.

    See docs/science.md#erasure-channel-and-ramp.
    """
    ramp = int(ramp_fraction * training_steps)
    if ramp <= 0:
        return jnp.asarray(p_max, jnp.float32)
    return p_max * jnp.minimum(jnp.asarray(step, jnp.float32) / ramp, 1.0)


def input_noise_views(key, x, c):
    """Two views x + c·σ⊙ε₁, x + c·σ⊙ε₂ with σ the per-feature batch std (ddof 0). x [N,D]."""
    sigma = jnp.std(x, axis=0, keepdims=True)
    k1, k2 = jax.random.split(key)
    view1 = x + c * sigma * jax.random.normal(k1, x.shape, x.dtype)
    view2 = x + c * sigma * jax.random.normal(k2, x.shape, x.dtype)
    return view1, view2
