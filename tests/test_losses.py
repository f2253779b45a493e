"""Losses against hand calculations, and which gradients are stopped (docs/science.md#losses)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisy_emcom import losses


def log_softmax(z):
    z = np.asarray(z, np.float64)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def test_kl_matches_definition():
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.25, 0.25])
    expected = np.sum(p * np.log(p / q))
    got = losses.kl_categorical(jnp.log(p), jnp.log(q))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert float(losses.kl_categorical(jnp.log(p), jnp.log(p))) == pytest.approx(0.0, abs=1e-6)


def speaker_case():
    # B=2 games, T=2 tokens, V=2 symbols.
    logits = jnp.array([[[0.0, 1.0], [2.0, 0.0]], [[0.5, 0.5], [0.0, -1.0]]])
    target = jnp.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0]]])
    tokens = np.array([[1, 0], [0, 1]])
    log_pi = log_softmax(logits)
    log_probs = jnp.asarray(np.take_along_axis(log_pi, tokens[..., None], -1)[..., 0])
    entropies = jnp.asarray(-np.sum(np.exp(log_pi) * log_pi, -1))
    values = jnp.array([[0.5, -0.5], [0.0, 1.0]])
    rewards = jnp.array([1.0, -1.0])
    return logits, target, log_probs, entropies, values, rewards


def test_speaker_loss_by_hand():
    logits, target, log_probs, entropies, values, rewards = speaker_case()
    coefs = losses.SpeakerCoefs(entropy=0.1, value=1.0, kl=0.5)
    total, terms = losses.speaker_loss(log_probs, entropies, values, logits, target, rewards, coefs)
    lp, ent, v, r = map(np.asarray, (log_probs, entropies, values, rewards))
    lq = log_softmax(target)
    kl = np.sum(np.exp(log_softmax(logits)) * (log_softmax(logits) - lq), -1)
    # Σ_b (1/T) Σ_t of each term.
    exp = {
        "speaker_policy_loss": np.sum(np.mean(-(r[:, None] - v) * lp, 1)),
        "speaker_entropy_loss": np.sum(np.mean(-0.1 * ent, 1)),
        "speaker_value_loss": np.sum(np.mean((r[:, None] - v) ** 2, 1)),
        "speaker_kl_loss": np.sum(np.mean(0.5 * kl, 1)),
    }
    for name, value in exp.items():
        np.testing.assert_allclose(terms[name], value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(total, sum(exp.values()), rtol=1e-5)
    # A concrete number: game 0, t=0: −(1 − 0.5)·log σ(1) = 0.5·0.31326.
    assert float(-(1 - 0.5) * lp[0, 0]) == pytest.approx(0.5 * 0.3132617, rel=1e-5)


def test_speaker_loss_gradients_are_stopped_where_the_spec_says():
    logits, target, log_probs, entropies, values, rewards = speaker_case()
    coefs = losses.SpeakerCoefs(entropy=0.0, value=0.0, kl=0.0)

    def pg(values, target, rewards):
        return losses.speaker_loss(log_probs, entropies, values, logits, target, rewards, coefs)[0]

    g_values, g_target, g_rewards = jax.grad(pg, argnums=(0, 1, 2))(values, target, rewards)
    # The baseline is stopped in the policy term; rewards and the target policy never get one.
    assert np.all(np.asarray(g_values) == 0)
    assert np.all(np.asarray(g_target) == 0)
    assert np.all(np.asarray(g_rewards) == 0)
    # With the value term on, dL/dV_bt = −2β_V (r_b − V_bt)/T.
    coefs = losses.SpeakerCoefs(entropy=0.0, value=1.0, kl=1.0)
    g = jax.grad(
        lambda v: losses.speaker_loss(log_probs, entropies, v, logits, target, rewards, coefs)[0]
    )(values)
    np.testing.assert_allclose(g, -2 * (rewards[:, None] - values) / 2, rtol=1e-6)


def test_rl_listener_loss_by_hand():
    scores = jnp.array([[1.0, 0.0, -1.0], [0.0, 0.0, 3.0]])
    actions = jnp.array([0, 1])
    value = jnp.array([0.2, -0.4])
    rewards = jnp.array([1.0, -1.0])
    total, terms = losses.rl_listener_loss(scores, actions, value, rewards, 1e-3, 1e-2)
    lp = log_softmax(scores)
    ent = -np.sum(np.exp(lp) * lp, -1)
    r, v = np.asarray(rewards), np.asarray(value)
    np.testing.assert_allclose(
        terms["listener_policy_loss"], np.sum(-(r - v) * lp[[0, 1], [0, 1]]), rtol=1e-5
    )
    np.testing.assert_allclose(terms["listener_value_loss"], np.sum(1e-3 * (r - v) ** 2), rtol=1e-5)
    np.testing.assert_allclose(terms["listener_entropy_loss"], np.sum(-1e-2 * ent), rtol=1e-5)
    np.testing.assert_allclose(total, sum(np.asarray(t) for t in terms.values()), rtol=1e-6)


def test_rl_listener_critic_gradient_reaches_the_scores_only_through_the_value():
    scores = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    actions = jnp.array([0, 0])
    rewards = jnp.array([1.0, -1.0])
    value = jnp.array([0.0, 0.0])

    def critic_only(value):
        return losses.rl_listener_loss(scores, actions, value, rewards, 1.0, 0.0)[1][
            "listener_value_loss"
        ]

    def policy_only(value):
        return losses.rl_listener_loss(scores, actions, value, rewards, 1.0, 0.0)[1][
            "listener_policy_loss"
        ]

    np.testing.assert_allclose(jax.grad(critic_only)(value), -2 * (rewards - value), rtol=1e-6)
    assert np.all(np.asarray(jax.grad(policy_only)(value)) == 0)


def test_infonce_by_hand():
    scores = jnp.array([[0.0, -2.0], [-1.0, 0.0]])
    expected = -(log_softmax([0.0, -2.0])[0] + log_softmax([-1.0, 0.0])[1])
    np.testing.assert_allclose(losses.infonce_loss(scores), expected, rtol=1e-6)
    # ln 2 per game when scores are uninformative.
    np.testing.assert_allclose(losses.infonce_loss(jnp.zeros((2, 2))), 2 * np.log(2), rtol=1e-6)
