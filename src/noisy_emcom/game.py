"""One round of the Lewis game as pure functions (docs/science.md, docs/tests.md).

Training: inputs → speaker (sample) → target speaker (forced) → channel → listener →
rewards → objective J = (L_S + L_L)/B. Evaluation: the same path, forward only, argmax
listener. Shapes: B games = K candidates (the whole batch, in batch order), T, V, D.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections

from noisy_emcom import channels, losses


class Nets(NamedTuple):
    speaker: hk.Transformed
    listener: hk.Transformed


class EvalBatch(NamedTuple):
    correct: jax.Array  # [K] bool, argmax choice == own index
    sent: jax.Array  # [K,T] int32, speaker tokens (pre-channel)
    received: jax.Array  # [K,T] int32, listener tokens (post-channel, V = erased)
    speaker_entropy: jax.Array  # [K] mean over t of H(π_t), nats
    listener_entropy: jax.Array  # [K] H(softmax(scores)), nats


def step_keys(key):
    """(speaker, channel, listener, input-noise) keys of one step or test batch."""
    return jax.random.split(key, 4)


def make_loss_fn(cfg: ml_collections.ConfigDict, nets: Nets):
    """loss(trainable=(speaker, listener), target, x[B,D], key, channel_p) → (J, stats)."""
    rl = cfg.listener.type == "rl"
    vocab = cfg.vocab_size
    coefs = losses.SpeakerCoefs(
        cfg.speaker.entropy_coef, cfg.speaker.value_coef, cfg.speaker.kl_coef
    )
    noise = float(cfg.dataset.input_noise)
    original_target = cfg.speaker.get("target", "copy") == "original"

    def loss(trainable, target_params, x, key, channel_p):
        speaker_params, listener_params = trainable
        k_spk, k_chan, k_lst, k_noise = step_keys(key)
        if noise > 0:
            x, _ = channels.input_noise_views(k_noise, x, noise)
        b = x.shape[0]

        # Tokens sampled without gradient, then scored with one: the same values as a
        # differentiated sampling loop, and a cheaper gradient (networks.lstm_unroll); the
        # scoring reuses the sampling loop's LSTM values (`trace`) instead of recomputing them.
        def sampled(params):
            out = nets.speaker.apply(jax.lax.stop_gradient(params), x, k_spk, "sample")
            return nets.speaker.apply(params, x, k_spk, "forced", out.tokens, out.trace)

        spk = sampled(speaker_params)
        if original_target:  # samples its own tokens with the online speaker's key
            tgt = sampled(target_params)
        else:  # other parameters than the trace's: the target's LSTM runs on the tokens
            tgt = nets.speaker.apply(target_params, x, k_spk, "forced", spk.tokens)
        chan = channels.erasure(0.0, cfg.length)._replace(erase_p=channel_p)
        received = channels.apply_channel(k_chan, spk.tokens, chan, vocab)
        out = nets.listener.apply(listener_params, received, x, compute_value=rl)
        targets = jnp.arange(b)
        greedy = jnp.argmax(out.scores, axis=-1)
        nan = jnp.float32(jnp.nan)
        if rl:
            temp = cfg.listener.temperature
            action = jax.random.categorical(k_lst, out.scores / temp)
            rewards = jnp.where(action == targets, 1.0, -1.0)
            l_lst, lst_terms = losses.rl_listener_loss(
                out.scores,
                action,
                out.value,
                rewards,
                cfg.listener.critic_coef,
                cfg.listener.entropy_coef,
                temp,
            )
            listener_value = jnp.mean(out.value)
        else:
            action = greedy
            rewards = (greedy == targets).astype(jnp.float32)
            l_lst = losses.infonce_loss(out.scores)
            lst_terms = dict.fromkeys(
                ("listener_policy_loss", "listener_value_loss", "listener_entropy_loss"), nan * b
            )
            listener_value = nan
        l_spk, spk_terms = losses.speaker_loss(
            spk.log_probs, spk.entropies, spk.values, spk.logits, tgt.logits, rewards, coefs
        )
        stats = {k: v / b for k, v in {**spk_terms, **lst_terms}.items()}
        stats.update(
            channel_p=jnp.asarray(channel_p, jnp.float32),
            erased_fraction=jnp.mean(received == vocab),
            accuracy=jnp.mean(action == targets),
            greedy_accuracy=jnp.mean(greedy == targets),
            reward=jnp.mean(rewards),
            speaker_entropy=jnp.mean(spk.entropies),
            speaker_value=jnp.mean(spk.values),
            listener_loss=l_lst / b,
            listener_entropy=jnp.mean(losses.categorical_entropy(out.scores)),
            listener_value=listener_value,
        )
        return (l_spk + l_lst) / b, stats

    return loss


def make_eval_batch(cfg: ml_collections.ConfigDict, nets: Nets, decoding: str):
    """fn(speaker, listener, x[K,D], key, channel, input_noise, independent_view) → EvalBatch.

    The speaker sees view 1; candidates are view 2 if `independent_view` else view 1
    (docs/science.md#input-noise).
    Channel parameters, noise coefficient and view flag are traced: one compile per K.
    """
    if decoding not in ("sample", "greedy"):
        raise ValueError(f"decoding must be sample|greedy, got {decoding!r}")
    vocab = cfg.vocab_size

    def fn(speaker_params, listener_params, x, key, channel, input_noise, independent_view):
        k_spk, k_chan, _, k_noise = step_keys(key)
        view1, view2 = channels.input_noise_views(k_noise, x, input_noise)
        candidates = jnp.where(independent_view, view2, view1)
        spk = nets.speaker.apply(speaker_params, view1, k_spk, decoding)
        received = channels.apply_channel(k_chan, spk.tokens, channel, vocab)
        out = nets.listener.apply(listener_params, received, candidates)
        correct = jnp.argmax(out.scores, axis=-1) == jnp.arange(x.shape[0])
        return EvalBatch(
            correct,
            spk.tokens,
            received,
            jnp.mean(spk.entropies, axis=1),
            losses.categorical_entropy(out.scores),
        )

    return fn
