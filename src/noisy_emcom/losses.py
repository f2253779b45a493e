"""Losses of the three games (docs/science.md#losses). Each returns the *sum over games* of its
terms and a dict of per-term sums; the objective divides by the number of games B.

Shapes: B games, T tokens, V symbols, K candidates (= B in training).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

sg = jax.lax.stop_gradient


class SpeakerCoefs(NamedTuple):
    entropy: float = 1e-4  # β_H
    value: float = 1.0  # β_V
    kl: float = 0.5  # β_KL


def kl_categorical(logits, target_logits):
    """KL(π ‖ π_tgt) = Σ_v π(v)(log π(v) − log π_tgt(v)) over the last axis, from logits."""
    log_p = jax.nn.log_softmax(logits)
    log_q = jax.nn.log_softmax(target_logits)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def speaker_loss(log_probs, entropies, values, logits, target_logits, rewards, coefs: SpeakerCoefs):
    """L_S = L_pg + L_ent + L_V + L_KL, each Σ_b (1/T) Σ_t of (docs/science.md#speaker-loss):

    pg  = −(r_b − sg(V_bt))·log π_bt(a_bt)      ent = −β_H·H(π_bt)
    V   = β_V·(r_b − V_bt)²                      KL  = β_KL·KL(π_bt ‖ sg(π^tgt_bt))
    log_probs, entropies, values [B,T]; logits, target_logits [B,T,V]; rewards [B] (stopped).
    """
    r = sg(rewards)[:, None]
    terms = {
        "speaker_policy_loss": -(r - sg(values)) * log_probs,
        "speaker_entropy_loss": -coefs.entropy * entropies,
        "speaker_value_loss": coefs.value * jnp.square(r - values),
        "speaker_kl_loss": coefs.kl * kl_categorical(logits, sg(target_logits)),
    }
    sums = {k: jnp.sum(jnp.mean(v, axis=1)) for k, v in terms.items()}
    return sum(sums.values()), sums


def rl_listener_loss(
    scores, actions, value, rewards, critic_coef=1e-3, entropy_coef=1e-4, temperature=1.0
):
    """L_L = Σ_b [−(r_b − sg(V_b))·log π_b(â_b) + β_c(r_b − V_b)² − β_LH·H(π_b)] (docs/science.md).

    scores [B,K] policy logits L; actions [B]; value [B]; rewards [B] (stopped). The critic
    gradient flows into L through V (faithful to the original).
    """
    log_pi = jax.nn.log_softmax(scores / temperature)
    log_p_action = jnp.take_along_axis(log_pi, actions[:, None], axis=-1)[:, 0]
    entropy = categorical_entropy(scores / temperature)
    r = sg(rewards)
    sums = {
        "listener_policy_loss": jnp.sum(-(r - sg(value)) * log_p_action),
        "listener_value_loss": jnp.sum(critic_coef * jnp.square(r - value)),
        "listener_entropy_loss": jnp.sum(-entropy_coef * entropy),
    }
    return sum(sums.values()), sums


def infonce_loss(scores):
    """L_L = Σ_b −log softmax_j(S[b,:])_b, the target of game b being candidate b. scores [B,B]."""
    log_p = jax.nn.log_softmax(scores, axis=-1)
    return -jnp.sum(jnp.diagonal(log_p))


def categorical_entropy(logits):
    """H(softmax(logits)) in nats over the last axis."""
    log_p = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
