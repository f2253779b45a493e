"""Speaker and listeners as Haiku modules (docs/science.md#networks), Haiku default initialisers.

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


class LSTMTrace(NamedTuple):
    """The forward values of one LSTM unroll, as its gradient needs them."""

    h0: jax.Array  # [B,H] initial hidden state
    hs: jax.Array  # [T,B,H] hidden states h_1..h_T
    saved: tuple[jax.Array, ...]  # per step (c_{t-1}, i, g, f, o, tanh c_t), [T,B,H] each


class SpeakerOutput(NamedTuple):
    tokens: jax.Array  # [B,T] int32, no gradient
    log_probs: jax.Array  # [B,T] log π_t(a_t)
    entropies: jax.Array  # [B,T] H(π_t) in nats
    logits: jax.Array  # [B,T,V]
    values: jax.Array  # [B,T]
    trace: LSTMTrace | None = None  # `sample`/`greedy`: the core's unroll, for `forced`


class ListenerOutput(NamedTuple):
    scores: jax.Array  # [B,K]: InfoNCE scores S or RL policy logits L
    value: jax.Array | None  # [B] RL value V_b (only when asked for)


def lstm_step(w, b, x, state: hk.LSTMState):
    """One step of hk.LSTM, x [B,I], w [I+H,4H], b [4H], state [B,H] each: gates i, g, f, o
    from [x, h] @ w + b (forget bias +1), c' = f·c + i·g, h' = o·tanh(c') → (new state,
    saved = (c, i, g, f, o, tanh c') [B,H] each, what the gradient needs)."""
    gated = jnp.concatenate([x, state.hidden], axis=-1) @ w + b
    i, g, f, o = jnp.split(gated, 4, axis=-1)
    i, g, f, o = jax.nn.sigmoid(i), jnp.tanh(g), jax.nn.sigmoid(f + 1), jax.nn.sigmoid(o)
    c = f * state.cell + i * g
    tc = jnp.tanh(c)
    return hk.LSTMState(o * tc, c), (state.cell, i, g, f, o, tc)


@jax.custom_vjp
def lstm_unroll(w, b, xs, h0, c0):
    """hk.LSTM over xs [T,B,I] from (h0, c0) [B,H] → hidden states [T,B,H] and (h_T, c_T).

    Same forward as `hk.dynamic_unroll(hk.LSTM(H), ...)`. Its gradient is hand-written: the
    reverse scan carries only δ_t = ∂J/∂(gate pre-activations) [B,4H] and ∂J/∂h_{t-1} = δ_t
    W_hᵀ; ∂J/∂w = [x, h_prev]ᵀ δ over all T·B rows is one matmul after the scan, where
    autodiff of a scan adds a [I+H,4H] outer product at every step.
    """
    hs, last, _ = _lstm_unroll_forward(w, b, xs, h0, c0)
    return hs, last


def _lstm_unroll_forward(w, b, xs, h0, c0):
    """(hs, (h_T, c_T), per-step (c_{t-1}, i, g, f, o, tanh c_t) for the gradient)."""

    def step(state, x):
        new, saved = lstm_step(w, b, x, state)
        return new, (new.hidden, saved)

    last, (hs, saved) = jax.lax.scan(step, hk.LSTMState(h0, c0), xs)
    return hs, (last.hidden, last.cell), saved


def _lstm_unroll_fwd(w, b, xs, h0, c0):
    hs, last, saved = _lstm_unroll_forward(w, b, xs, h0, c0)
    return (hs, last), (w, xs, h0, hs, saved)


def _lstm_unroll_bwd(residuals, cotangents):
    w, xs, h0, hs, saved = residuals
    d_hs, (d_h_last, d_c_last) = cotangents
    n_in = xs.shape[-1]
    # W_hᵀ [4H,H] written out once: without the barrier XLA folds the transpose into the
    # per-step dot, which then reads W_h transposed at every step (docs/performance.md).
    w_h_t = jax.lax.optimization_barrier(w[n_in:].T)

    def step(carry, inputs):
        d_h_next, d_c_next = carry
        d_out, (c_prev, i, g, f, o, tc) = inputs
        d_h = d_out + d_h_next
        d_c = d_c_next + d_h * o * (1.0 - tc * tc)
        delta = jnp.concatenate(
            [
                d_c * g * i * (1.0 - i),
                d_c * i * (1.0 - g * g),
                d_c * c_prev * f * (1.0 - f),
                d_h * tc * o * (1.0 - o),
            ],
            axis=-1,
        )
        return (delta @ w_h_t, d_c * f), delta

    (d_h0, d_c0), deltas = jax.lax.scan(step, (d_h_last, d_c_last), (d_hs, saved), reverse=True)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)  # h_{t-1} [T,B,H]
    rows = jnp.concatenate([xs, h_prev], axis=-1)  # [T,B,I+H]
    d_w = rows.reshape(-1, rows.shape[-1]).T @ deltas.reshape(-1, deltas.shape[-1])
    d_b = jnp.sum(deltas, axis=(0, 1))
    d_xs = deltas @ w[:n_in].T
    return d_w, d_b, d_xs, d_h0, d_c0


lstm_unroll.defvjp(_lstm_unroll_fwd, _lstm_unroll_bwd)


@jax.custom_vjp
def lstm_unroll_traced(w, b, xs, h0, c0, trace: LSTMTrace):
    """`lstm_unroll(w, b, xs, h0, c0)[0]` when its forward values are already known: `trace`,
    from a loop that ran the same cell on the same w, b, xs, h0, c0 (the speaker's decoding
    loop, under stop-gradient). Returns trace.hs [T,B,H] without recomputing it; the gradient
    is `lstm_unroll`'s, from the trace (none flows into the trace itself). Nothing checks that
    the trace matches: one from other weights or inputs gives wrong values silently.
    """
    return trace.hs


def _lstm_unroll_traced_fwd(w, b, xs, h0, c0, trace: LSTMTrace):
    return trace.hs, (w, xs, trace)


def _lstm_unroll_traced_bwd(residuals, d_hs):
    w, xs, trace = residuals
    zeros = jnp.zeros_like(trace.h0)  # ∂J/∂(h_T, c_T): only hs is returned
    grads = _lstm_unroll_bwd((w, xs, trace.h0, trace.hs, trace.saved), (d_hs, (zeros, zeros)))
    return (*grads, jax.tree_util.tree_map(jnp.zeros_like, trace))


lstm_unroll_traced.defvjp(_lstm_unroll_traced_fwd, _lstm_unroll_traced_bwd)


class _LinearParams(hk.Module):
    """hk.Linear's parameters without applying them: w [I,O] ~ TruncatedNormal(1/√I), b = 0."""

    def __call__(self, fan_in: int, fan_out: int):
        init = hk.initializers.TruncatedNormal(1.0 / np.sqrt(fan_in))
        w = hk.get_parameter("w", [fan_in, fan_out], jnp.float32, init)
        return w, hk.get_parameter("b", [fan_out], jnp.float32, jnp.zeros)


class LSTMParams(hk.Module):
    """hk.LSTM's parameters, same names (`<name>/linear/w` [I+H,4H], `b` [4H]) and initialiser,
    for `lstm_step` (token-by-token decoding) and `lstm_unroll` (a known input sequence)."""

    def __init__(self, hidden_size: int, name: str = "core"):
        super().__init__(name=name)
        self.hidden_size = hidden_size

    def __call__(self, input_size: int):
        return _LinearParams(name="linear")(input_size + self.hidden_size, 4 * self.hidden_size)


class Speaker(hk.Module):
    """x [B,D] → T tokens. h_0,c_0 = split(Linear(2H)(x)); e_t = Embed(a_{t-1}), a_0 = SOS = V.

    `sample`/`greedy`: the T decoding steps are one `hk.scan` (token t sampled with key t of
    split(key, T)), compiled once instead of T unrolled copies; the output's `trace` holds the
    core's forward values. `forced` scores given tokens with `lstm_unroll` and the heads on all
    T steps at once: the training loss samples the tokens (no gradient) and then scores them in
    this mode (docs/performance.md), passing the sampling's `trace` (same parameters, same
    tokens) so that the core is not run again.
    """

    def __init__(self, vocab_size: int, length: int, embed_dim: int, lstm_size: int):
        super().__init__(name="speaker")
        self.vocab_size, self.length = vocab_size, length
        self.embed_dim, self.lstm_size = embed_dim, lstm_size

    def __call__(self, x, key, mode: str, forced_tokens=None, trace=None) -> SpeakerOutput:
        if mode not in MODES:
            raise ValueError(f"speaker mode must be one of {MODES}, got {mode!r}")
        if mode == "forced" and forced_tokens is None:
            raise ValueError("speaker mode 'forced' needs forced_tokens [B,T]")
        b = x.shape[0]
        init = hk.Linear(2 * self.lstm_size, name="initial_state")(x)
        state = hk.LSTMState(hidden=init[:, : self.lstm_size], cell=init[:, self.lstm_size :])
        embed = hk.Embed(self.vocab_size + 1, self.embed_dim, name="token_embed")
        core = LSTMParams(self.lstm_size, name="core")
        policy = hk.Linear(self.vocab_size, name="policy")
        value = hk.Linear(1, name="value")

        def emitted(logits, token, out):
            """(token, log π(token), H(π), logits, value) of one or all steps."""
            log_pi = jax.nn.log_softmax(logits)
            return (
                token,
                jnp.take_along_axis(log_pi, token[..., None], axis=-1)[..., 0],
                -jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1),
                logits,
                value(out)[..., 0],
            )

        if mode == "forced":
            tokens = jnp.swapaxes(forced_tokens, 0, 1).astype(jnp.int32)  # [T,B]
            sos = jnp.full((1, b), self.vocab_size, jnp.int32)
            xs = embed(jnp.concatenate([sos, tokens[:-1]], axis=0))  # [T,B,E]
            if trace is None:
                hs, _ = lstm_unroll(*core(self.embed_dim), xs, state.hidden, state.cell)
            else:
                weights = core(self.embed_dim)
                hs = lstm_unroll_traced(*weights, xs, state.hidden, state.cell, trace)
            out = emitted(policy(hs), tokens, hs)
            new_trace = None
        else:
            keys = jax.random.split(key, self.length) if mode == "sample" else None

            def step(carry, key_t):
                prev, state = carry
                x_t = embed(prev)  # before `core`: the parameters are created in hk.LSTM's order
                state, saved = lstm_step(*core(self.embed_dim), x_t, state)
                logits = policy(state.hidden)
                if mode == "sample":
                    token = jax.random.categorical(key_t, logits).astype(jnp.int32)
                else:
                    token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
                token = jax.lax.stop_gradient(token)
                return (token, state), (emitted(logits, token, state.hidden), state.hidden, saved)

            prev = jnp.full((b,), self.vocab_size, jnp.int32)
            _, (out, hs, saved) = hk.scan(step, (prev, state), keys, length=self.length)
            new_trace = LSTMTrace(state.hidden, hs, saved)
        tokens, log_probs, entropies, logits, values = (jnp.swapaxes(z, 0, 1) for z in out)
        return SpeakerOutput(tokens, log_probs, entropies, logits, values, new_trace)


class MessageEncoder(hk.Module):
    """Received tokens [B,T] → last LSTM output h [B,H]. Ids ≥ vocab are aliased to vocab − 1."""

    def __init__(self, vocab_size: int, embed_dim: int, lstm_size: int, name="message_encoder"):
        super().__init__(name=name)
        self.vocab_size, self.embed_dim, self.lstm_size = vocab_size, embed_dim, lstm_size

    def __call__(self, tokens):
        ids = jnp.minimum(tokens, self.vocab_size - 1)  # `alias`: unknown id V → V−1
        emb = hk.Embed(self.vocab_size, self.embed_dim, name="token_embed")(ids.T)  # [T,B,E]
        zeros = jnp.zeros((tokens.shape[0], self.lstm_size), emb.dtype)
        w, b = LSTMParams(self.lstm_size, name="core")(self.embed_dim)
        hs, _ = lstm_unroll(w, b, emb, zeros, zeros)
        return hs[-1]


def same_patches(x, kernel: int, stride: int = 1):
    """ "SAME"-padded k×k patches of x [B,H,W,C] → [B,⌈H/s⌉,⌈W/s⌉,k·k·C], ordered (row, column,
    channel) like a kernel [k,k,C,C'] reshaped to [k·k·C, C'] (built from strided slices, whose
    gradient is a pad)."""
    k, s = kernel, stride
    pads, out = [], []
    for size in x.shape[1:3]:
        n_out = -(-size // s)
        total = max((n_out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
        out.append(n_out)
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    (oh, ow), span = out, lambda n: (n - 1) * s + 1
    return jnp.concatenate(
        [xp[:, i : i + span(oh) : s, j : j + span(ow) : s] for i in range(k) for j in range(k)],
        axis=-1,
    )


def _conv_weight(kernel: int, c_in: int, c_out: int, dtype):
    """Parameter `w` [k,k,C,C'] with hk.Conv2D's initialiser (truncated normal, σ = 1/√(k·k·C))."""
    shape = (kernel, kernel, c_in, c_out)
    stddev = 1.0 / np.sqrt(np.prod(shape[:-1]))
    return hk.get_parameter("w", shape, dtype, hk.initializers.TruncatedNormal(stddev))


class PatchConv2D(hk.Module):
    """`hk.Conv2D` (NHWC, "SAME" padding, same parameter names, shapes and initialiser) as
    `same_patches` and one matmul with w [k,k,C,C'] → [k·k·C, C'].

    Same outputs as `hk.Conv2D`; on XLA CPU its gradient is about 3× faster, because the
    gradient of a slice is a pad, not a transposed convolution.
    """

    def __init__(self, channels, kernel, stride=1, with_bias=True, name="conv2_d"):
        super().__init__(name=name)
        self.channels, self.kernel, self.stride = channels, kernel, stride
        self.with_bias = with_bias

    def __call__(self, x):
        w = _conv_weight(self.kernel, x.shape[-1], self.channels, x.dtype)
        y = same_patches(x, self.kernel, self.stride) @ w.reshape(-1, self.channels)
        if self.with_bias:
            y = y + hk.get_parameter("b", (self.channels,), x.dtype, jnp.zeros)
        return y


# _PHASE_TAPS[d, a, t] = 1 when tap a (0..2) of a 3×3 kernel, at output phase d (0..1) of a
# ×2 nearest upsampling, reads input offset t − 1: upsampled row 2i+d+a−1 is input row
# ⌊(2i+d+a−1)/2⌋ = i + ⌊(d+a−1)/2⌋.
_PHASE_TAPS = np.zeros((2, 3, 3), np.float32)
for _d in range(2):
    for _a in range(3):
        _PHASE_TAPS[_d, _a, (_d + _a - 1) // 2 + 1] = 1.0


class UpsampleConv2D(hk.Module):
    """Nearest ×2 upsampling then a 3×3 "SAME" convolution without bias: [B,H,W,C] →
    [B,2H,2W,C'], computed at the input resolution.

    Output phase (d_r, d_c) ∈ {0,1}² is a 3×3 convolution of the input with the folded kernel
    W_eff[t_r,t_c,:,d_r,d_c,:] = Σ_{a,b} P[d_r,a,t_r]·P[d_c,b,t_c]·w[a,b] (P = `_PHASE_TAPS`);
    the four phases are one matmul [B,H,W,9C] @ [9C, 4C'], then interleaved. Parameter `w`
    [3,3,C,C'] is exactly that of `hk.Conv2D(C', 3, with_bias=False)` applied after
    upsampling, with the same outputs, at a quarter of the patch memory.
    """

    def __init__(self, channels: int, name: str = "conv2_d"):
        super().__init__(name=name)
        self.channels = channels

    def __call__(self, x):
        b, h, w_, c = x.shape
        w = _conv_weight(3, c, self.channels, x.dtype)
        folded = jnp.einsum("xat,ybu,abco->tucxyo", _PHASE_TAPS, _PHASE_TAPS, w)
        y = same_patches(x, 3) @ folded.reshape(9 * c, 4 * self.channels)
        y = y.reshape(b, h, w_, 2, 2, self.channels).transpose(0, 1, 3, 2, 4, 5)
        return y.reshape(b, 2 * h, 2 * w_, self.channels)


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
    """apply(params, x[B,D], key, mode, forced_tokens=None, trace=None) → SpeakerOutput."""

    def forward(x, key, mode="sample", forced_tokens=None, trace=None):
        s = cfg.speaker
        return Speaker(cfg.vocab_size, cfg.length, s.embed_dim, s.lstm_size)(
            x, key, mode, forced_tokens, trace
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
    """`embed` policy (docs/science.md#unknown-token-policy): append one never-trained row,
    N(0,1) truncated at ±2.

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
