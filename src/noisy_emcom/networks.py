"""Speaker and listeners as Haiku modules (SPEC §3). All use Haiku's default initialisers.

Shapes: B senders/games, K candidates, T message length, V vocabulary, D feature width.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

MODES = ("sample", "greedy", "forced")


class SpeakerOutput(NamedTuple):
    tokens: jax.Array  # [B,T] int32, no gradient
    log_probs: jax.Array  # [B,T] log π_t(a_t)
    entropies: jax.Array  # [B,T] H(π_t) in nats
    logits: jax.Array  # [B,T,V]
    values: jax.Array  # [B,T]


class ListenerOutput(NamedTuple):
    scores: jax.Array  # [B,K]: InfoNCE scores S or RL policy logits L
    value: jax.Array | None  # [B] RL value V_b (only when asked for)


class Speaker(hk.Module):
    """x [B,D] → T tokens. h_0,c_0 = split(Linear(2H)(x)); e_t = Embed(a_{t-1}), a_0 = SOS = V."""

    def __init__(self, vocab_size: int, length: int, embed_dim: int, lstm_size: int):
        super().__init__(name="speaker")
        self.vocab_size, self.length = vocab_size, length
        self.embed_dim, self.lstm_size = embed_dim, lstm_size

    def __call__(self, x, key, mode: str, forced_tokens=None) -> SpeakerOutput:
        if mode not in MODES:
            raise ValueError(f"speaker mode must be one of {MODES}, got {mode!r}")
        if mode == "forced" and forced_tokens is None:
            raise ValueError("speaker mode 'forced' needs forced_tokens [B,T]")
        b = x.shape[0]
        init = hk.Linear(2 * self.lstm_size, name="initial_state")(x)
        state = hk.LSTMState(hidden=init[:, : self.lstm_size], cell=init[:, self.lstm_size :])
        embed = hk.Embed(self.vocab_size + 1, self.embed_dim, name="token_embed")
        core = hk.LSTM(self.lstm_size, name="core")
        policy = hk.Linear(self.vocab_size, name="policy")
        value = hk.Linear(1, name="value")
        keys = jax.random.split(key, self.length) if mode == "sample" else [None] * self.length

        prev = jnp.full((b,), self.vocab_size, jnp.int32)
        outs = []
        for t in range(self.length):
            out, state = core(embed(prev), state)
            logits = policy(out)
            if mode == "sample":
                token = jax.random.categorical(keys[t], logits).astype(jnp.int32)
            elif mode == "greedy":
                token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            else:
                token = forced_tokens[:, t].astype(jnp.int32)
            token = jax.lax.stop_gradient(token)
            log_pi = jax.nn.log_softmax(logits)
            outs.append(
                (
                    token,
                    jnp.take_along_axis(log_pi, token[:, None], axis=-1)[:, 0],
                    -jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1),
                    logits,
                    value(out)[:, 0],
                )
            )
            prev = token
        tokens, log_probs, entropies, logits, values = (
            jnp.stack(z, axis=1) for z in zip(*outs, strict=True)
        )
        return SpeakerOutput(tokens, log_probs, entropies, logits, values)


class MessageEncoder(hk.Module):
    """Received tokens [B,T] → last LSTM output h [B,H] (SPEC §3.3). Ids ≥ vocab are aliased."""

    def __init__(self, vocab_size: int, embed_dim: int, lstm_size: int, name="message_encoder"):
        super().__init__(name=name)
        self.vocab_size, self.embed_dim, self.lstm_size = vocab_size, embed_dim, lstm_size

    def __call__(self, tokens):
        ids = jnp.minimum(tokens, self.vocab_size - 1)  # `alias`: unknown id V → V−1
        emb = hk.Embed(self.vocab_size, self.embed_dim, name="token_embed")(ids)  # [B,T,E]
        core = hk.LSTM(self.lstm_size, name="core")
        out, _ = hk.dynamic_unroll(
            core, jnp.swapaxes(emb, 0, 1), core.initial_state(tokens.shape[0])
        )
        return out[-1]


class PatchConv2D(hk.Module):
    """`hk.Conv2D` (NHWC, "SAME" padding, same parameter names, shapes and initialiser) as
    k·k strided slices concatenated to patches [B,H',W',k·k·C] and one matmul with w
    [k,k,C,C'] → [k·k·C, C'].

    Same outputs as `hk.Conv2D`; on XLA CPU its gradient is about 3× faster, because the
    gradient of a slice is a pad, not a transposed convolution.
    """

    def __init__(
        self,
        channels: int,
        kernel: int,
        stride: int = 1,
        with_bias: bool = True,
        name: str = "conv2_d",
    ):
        super().__init__(name=name)
        self.channels, self.kernel, self.stride, self.with_bias = (
            channels,
            kernel,
            stride,
            with_bias,
        )

    def __call__(self, x):
        k, s = self.kernel, self.stride
        w_shape = (k, k, x.shape[-1], self.channels)
        stddev = 1.0 / np.sqrt(np.prod(w_shape[:-1]))
        w = hk.get_parameter("w", w_shape, x.dtype, hk.initializers.TruncatedNormal(stddev))
        pads, out = [], []
        for size in x.shape[1:3]:
            n_out = -(-size // s)
            total = max((n_out - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
            out.append(n_out)
        xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
        (oh, ow), span = out, lambda n: (n - 1) * s + 1
        patches = jnp.concatenate(
            [xp[:, i : i + span(oh) : s, j : j + span(ow) : s] for i in range(k) for j in range(k)],
            axis=-1,
        )
        y = patches @ w.reshape(-1, self.channels)
        if self.with_bias:
            y = y + hk.get_parameter("b", (self.channels,), x.dtype, jnp.zeros)
        return y


def cosine_scores(p, z):
    """S[b,j] = −‖p̂_b − ẑ_j‖², û = u·max(‖u‖², 1e-12)^(−½). p [B,H], z [K,H] → [B,K]."""

    def normalise(u):
        return u * jax.lax.rsqrt(jnp.maximum(jnp.sum(u * u, axis=-1, keepdims=True), 1e-12))

    p_hat, z_hat = normalise(p), normalise(z)
    sq = jnp.sum(p_hat**2, -1)[:, None] + jnp.sum(z_hat**2, -1)[None, :] - 2.0 * p_hat @ z_hat.T
    return -sq


class Listener(hk.Module):
    """Message encoder + head. `cpc`: S = −‖p̂−ẑ‖²; `rl`: L = m·c and a value MLP on L's rows."""

    def __init__(self, cfg: ml_collections.ConfigDict, vocab_size: int, batch_size: int):
        super().__init__(name="listener")
        self.cfg, self.vocab_size, self.batch_size = cfg, vocab_size, batch_size

    def __call__(self, tokens, candidates, compute_value: bool = False) -> ListenerOutput:
        c = self.cfg
        h = MessageEncoder(self.vocab_size, c.embed_dim, c.lstm_size)(tokens)
        msg = jnp.tanh(hk.Linear(c.hidden, name="message_proj")(h))
        cand = jnp.tanh(hk.Linear(c.hidden, name="candidate_proj")(candidates))
        if c.type == "cpc":
            return ListenerOutput(cosine_scores(msg, cand), None)
        if c.type != "rl":
            raise ValueError(f"listener.type must be cpc|rl, got {c.type!r}")
        scores = msg @ cand.T
        value = None
        if compute_value:
            if scores.shape[1] != self.batch_size:
                raise ValueError(
                    f"the RL value head needs K = batch_size = {self.batch_size} candidates, "
                    f"got {scores.shape[1]}"
                )
            value = hk.nets.MLP((*c.value_hidden, 1), name="value")(scores)[:, 0]
        return ListenerOutput(scores, value)


def make_speaker(cfg: ml_collections.ConfigDict) -> hk.Transformed:
    """apply(params, x[B,D], key, mode, forced_tokens=None) → SpeakerOutput."""

    def forward(x, key, mode="sample", forced_tokens=None):
        s = cfg.speaker
        return Speaker(cfg.vocab_size, cfg.length, s.embed_dim, s.lstm_size)(
            x, key, mode, forced_tokens
        )

    return hk.without_apply_rng(hk.transform(forward))


def make_listener(cfg: ml_collections.ConfigDict, vocab_size: int | None = None) -> hk.Transformed:
    """apply(params, tokens[B,T], candidates[K,D], compute_value=False) → ListenerOutput."""
    vocab = vocab_size or cfg.listener.vocab_size

    def forward(tokens, candidates, compute_value=False):
        return Listener(cfg.listener, vocab, cfg.batch_size)(tokens, candidates, compute_value)

    return hk.without_apply_rng(hk.transform(forward))


EMBED_PATH = "listener/message_encoder/token_embed"


def with_erased_token_row(listener_params: hk.Params, random_seed: int) -> hk.Params:
    """`embed` policy (SPEC §5.5): append one never-trained row, N(0,1) truncated at ±2.

    The row's key is fold_in(PRNGKey(random_seed), 7); build the listener with vocab V+1.
    """
    table = listener_params[EMBED_PATH]["embeddings"]
    key = jax.random.fold_in(jax.random.PRNGKey(random_seed), 7)
    row = jax.random.truncated_normal(key, -2.0, 2.0, (1, table.shape[1]), table.dtype)
    params = dict(listener_params)
    params[EMBED_PATH] = {"embeddings": jnp.concatenate([table, row], axis=0)}
    return params


def count_params(params: hk.Params) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
