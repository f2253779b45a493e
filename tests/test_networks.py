"""Network shapes, sizes, decoding modes, the target update and the unknown-token policy."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisy_emcom import networks, train
from noisy_emcom.configs import get_config

leaves = jax.tree_util.tree_leaves

KEY = jax.random.PRNGKey(0)


def test_paper_sizes_and_output_shapes():
    cfg = get_config("lg_rlrl", "imagenet", {"batch_size": 16})
    spk, lst = networks.make_speaker(cfg), networks.make_listener(cfg)
    x = jnp.ones((16, 2048))
    sp = spk.init(KEY, x, KEY)
    # docs/science.md#speaker: 1,049,088 + 210 + 273,408 + 5,140 + 257.
    assert networks.count_params(sp) == 1_328_103
    out = spk.apply(sp, x, KEY, "sample")
    assert out.tokens.shape == (16, 10) and out.tokens.dtype == jnp.int32
    assert out.logits.shape == (16, 10, 20)
    for a in (out.log_probs, out.entropies, out.values):
        assert a.shape == (16, 10)
    assert int(out.tokens.max()) < 20
    lp = lst.init(KEY, out.tokens, x, compute_value=True)
    res = lst.apply(lp, out.tokens, x, compute_value=True)
    assert res.scores.shape == (16, 16) and res.value.shape == (16,)
    # Value MLP sizes follow B: (max(B//4,4), max(B//16,2), 1) = (4, 2, 1) at B = 16.
    assert lp["listener/value/~/linear_0"]["w"].shape == (16, 4)
    assert lp["listener/value/~/linear_1"]["w"].shape == (4, 2)
    # Message encoder: 1,071,104 + 10·V for the LSTM(512) and the embedding.
    enc = {k: v for k, v in lp.items() if "message_encoder" in k}
    assert networks.count_params(enc) == 1_071_104 + 200
    # At test K may differ from B: scores only, no value head.
    many = jnp.ones((64, 2048))
    assert lst.apply(lp, jnp.zeros((64, 10), jnp.int32), many).scores.shape == (64, 64)
    with pytest.raises(ValueError, match="K = batch_size"):
        lst.apply(lp, jnp.zeros((64, 10), jnp.int32), many, compute_value=True)


def test_cpc_scores_are_two_cos_minus_two():
    p = jax.random.normal(KEY, (5, 7))
    z = jax.random.normal(jax.random.PRNGKey(1), (6, 7))
    cos = (p / jnp.linalg.norm(p, axis=1, keepdims=True)) @ (
        z / jnp.linalg.norm(z, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(networks.cosine_scores(p, z), 2 * cos - 2, atol=1e-5)


def test_decoding_modes():
    cfg = get_config("lg_rlss", "debug")
    spk = networks.make_speaker(cfg)
    x = jax.random.normal(KEY, (8, 32))
    params = spk.init(KEY, x, KEY)
    sampled = spk.apply(params, x, jax.random.PRNGKey(3), "sample")
    greedy = spk.apply(params, x, KEY, "greedy")
    assert np.array_equal(greedy.tokens, np.argmax(greedy.logits, -1))
    forced = spk.apply(params, x, KEY, "forced", sampled.tokens)
    # Teacher forcing on the sampled tokens reproduces the same logits at the same prefixes.
    np.testing.assert_allclose(forced.logits, sampled.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(forced.log_probs, sampled.log_probs, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="forced_tokens"):
        spk.apply(params, x, KEY, "forced")


def test_forced_scoring_reuses_the_sampling_trace():
    """`forced` with the decoding loop's `trace` (as the training loss calls it) gives the
    values and gradient of `forced` running the LSTM core again (the same cell on the same
    inputs; the test allows float32 rounding)."""
    cfg = get_config("lg_rlss", "debug")
    spk = networks.make_speaker(cfg)
    x = jax.random.normal(KEY, (8, 32))
    params = spk.init(KEY, x, KEY)
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(KEY, p.shape), params)
    sampled = spk.apply(params, x, jax.random.PRNGKey(3), "sample")
    assert sampled.trace.hs.shape == (cfg.length, 8, cfg.speaker.lstm_size)
    weights = jax.random.normal(jax.random.PRNGKey(4), (8, cfg.length))

    def objective(trace):
        def f(params):
            out = spk.apply(params, x, KEY, "forced", sampled.tokens, trace)
            terms = (out.log_probs, out.entropies, out.values, jnp.sin(out.logits).sum(-1))
            return sum(jnp.sum(weights * z) for z in terms), out

        return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

    (_, with_trace), g_trace = objective(sampled.trace)
    (_, again), g_again = objective(None)
    assert with_trace.trace is None and again.trace is None
    for a, r in zip(with_trace[:5], again[:5], strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)
    for a, r in zip(leaves(g_trace), leaves(g_again), strict=True):
        assert float(jnp.max(jnp.abs(r))) > 1e-4  # every parameter gets a gradient
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)


def test_target_starts_as_copy_and_follows_the_ema():
    cfg = get_config("lg_rlrl", "debug")
    nets = train.make_nets(cfg)
    state = train.init_state(cfg, nets, 32, KEY)
    for a, b in zip(
        jax.tree_util.tree_leaves(state.speaker),
        jax.tree_util.tree_leaves(state.target),
        strict=True,
    ):
        assert np.array_equal(a, b)
    online = jax.tree_util.tree_map(lambda a: a + 1.0, state.speaker)
    new = train.ema_update(state.target, online, 0.99)
    for t, o, n in zip(
        *(jax.tree_util.tree_leaves(z) for z in (state.target, online, new)), strict=True
    ):
        np.testing.assert_allclose(n, 0.99 * t + 0.01 * o, rtol=1e-6)


def test_unknown_token_policies():
    cfg = get_config("lg_rlrl", "debug")
    lst = networks.make_listener(cfg)
    x = jax.random.normal(KEY, (8, 32))
    tok = jax.random.randint(KEY, (8, 10), 0, 20)
    params = lst.init(KEY, tok, x)
    erased = tok.at[:, 2].set(20)
    aliased = tok.at[:, 2].set(19)
    # alias: an erasure reads as symbol V−1.
    np.testing.assert_array_equal(
        lst.apply(params, erased, x).scores, lst.apply(params, aliased, x).scores
    )
    # embed: one extra, never-trained row drawn from the model seed; real rows unchanged.
    emb = networks.with_erased_token_row(params, random_seed=3)
    table = emb[networks.EMBED_PATH]["embeddings"]
    assert table.shape == (21, 10)
    np.testing.assert_array_equal(table[:20], params[networks.EMBED_PATH]["embeddings"])
    np.testing.assert_array_equal(
        table, networks.with_erased_token_row(params, 3)[networks.EMBED_PATH]["embeddings"]
    )
    assert np.all(np.abs(table[20]) <= 2.0)
    lst21 = networks.make_listener(cfg, vocab_size=21)
    s_embed = lst21.apply(emb, erased, x).scores
    np.testing.assert_array_equal(lst21.apply(emb, tok, x).scores, lst.apply(params, tok, x).scores)
    assert not np.allclose(s_embed, lst.apply(params, erased, x).scores)
    # NLG listeners own the erased row: V+1 embeddings.
    assert get_config("nlg_rlrl", "debug_0.5").listener.vocab_size == 21


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "bias"), [(8, 3, 1, True), (9, 3, 2, False), (8, 3, 2, True)]
)
def test_patch_conv_equals_haiku_conv(size, kernel, stride, bias):
    """Same parameters from the same key, same outputs and same gradients as hk.Conv2D."""

    def make(module):
        def f(x):
            return module(5, kernel, stride=stride, with_bias=bias, name="conv")(x)

        return hk.without_apply_rng(hk.transform(f))

    ours, ref = make(networks.PatchConv2D), make(hk.Conv2D)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, size, size + 1, 3))
    params = ours.init(jax.random.PRNGKey(0), x)
    ref_params = ref.init(jax.random.PRNGKey(0), x)
    jax.tree.map(np.testing.assert_array_equal, params, ref_params)
    out, ref_out = ours.apply(params, x), ref.apply(params, x)
    assert out.shape == ref_out.shape == (2, -(-size // stride), -(-(size + 1) // stride), 5)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)

    def loss(apply):
        return lambda p: jnp.sum(jnp.sin(apply(p, x)))

    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        jax.grad(loss(ours.apply))(params),
        jax.grad(loss(ref.apply))(params),
    )


def test_upsample_conv_equals_upsampling_then_haiku_conv():
    """UpsampleConv2D = nearest ×2 upsampling + hk.Conv2D(3×3, no bias): same parameters,
    outputs and gradients."""
    ours = hk.without_apply_rng(hk.transform(lambda x: networks.UpsampleConv2D(4, name="c")(x)))

    def reference(x):
        up = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return hk.Conv2D(4, 3, with_bias=False, name="c")(up)

    ref = hk.without_apply_rng(hk.transform(reference))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 5, 3))
    params = ours.init(jax.random.PRNGKey(0), x)
    jax.tree.map(np.testing.assert_array_equal, params, ref.init(jax.random.PRNGKey(0), x))
    out = ours.apply(params, x)
    assert out.shape == (2, 6, 10, 4)
    np.testing.assert_allclose(out, ref.apply(params, x), rtol=1e-5, atol=1e-5)
    grads = [
        jax.grad(lambda p, f=f: jnp.sum(jnp.cos(f(p, x))))(params) for f in (ours.apply, ref.apply)
    ]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), *grads)


def _haiku_lstm_unroll(hidden):
    """Reference: hk.dynamic_unroll of hk.LSTM, differentiated by JAX."""

    def forward(xs, h0, c0):
        core = hk.LSTM(hidden, name="core")
        return hk.dynamic_unroll(core, xs, hk.LSTMState(h0, c0))

    return hk.without_apply_rng(hk.transform(forward))


def _our_lstm_unroll(hidden):
    def forward(xs, h0, c0):
        w, b = networks.LSTMParams(hidden, name="core")(xs.shape[-1])
        hs, (h, c) = networks.lstm_unroll(w, b, xs, h0, c0)
        return hs, hk.LSTMState(h, c)

    return hk.without_apply_rng(hk.transform(forward))


def test_lstm_has_haiku_parameters_forward_and_gradient():
    """networks.LSTMParams + lstm_unroll: hk.LSTM's parameter names and initial values, its
    forward bit for bit (same operations), its gradient to float32 rounding (hand-written)."""
    t, b, n_in, hidden = 6, 5, 3, 8
    ks = jax.random.split(KEY, 4)
    xs = jax.random.normal(ks[0], (t, b, n_in))
    h0, c0 = (jax.random.normal(k, (b, hidden)) for k in ks[1:3])
    ref, ours = _haiku_lstm_unroll(hidden), _our_lstm_unroll(hidden)
    params = ref.init(ks[3], xs, h0, c0)
    mine = ours.init(ks[3], xs, h0, c0)
    assert jax.tree_util.tree_structure(mine) == jax.tree_util.tree_structure(params)
    for a, m in zip(leaves(params), leaves(mine), strict=True):
        assert np.array_equal(a, m)
    # Random non-trivial biases, so that every gate's gradient path is exercised.
    params = {"core/linear": {**params["core/linear"], "b": jax.random.normal(ks[3], (32,))}}
    (hs_ref, last_ref), (hs, last) = ref.apply(params, xs, h0, c0), ours.apply(params, xs, h0, c0)
    assert np.array_equal(hs, hs_ref)
    assert all(np.array_equal(a, r) for a, r in zip(last, last_ref, strict=True))

    weights = jax.random.normal(ks[2], (t, b, hidden))

    def objective(net):
        def f(params, xs, h0, c0):
            hs, last = net.apply(params, xs, h0, c0)
            return jnp.sum(weights * hs) + jnp.sum(last.hidden**2) + jnp.sum(jnp.sin(last.cell))

        return jax.grad(f, argnums=(0, 1, 2, 3))

    g_ref = objective(ref)(params, xs, h0, c0)
    g = objective(ours)(params, xs, h0, c0)
    for a, r in zip(leaves(g), leaves(g_ref), strict=True):
        assert float(jnp.max(jnp.abs(r))) > 1e-3  # a gradient that is not trivially zero
        np.testing.assert_allclose(a, r, rtol=2e-5, atol=2e-6)


def test_lstm_gradient_is_bitwise_reproducible():
    """Two evaluations of the hand-written gradient on the same machine agree bit for bit."""
    t, b, n_in, hidden = 4, 3, 2, 5
    xs = jax.random.normal(KEY, (t, b, n_in))
    zeros = jnp.zeros((b, hidden))
    net = _our_lstm_unroll(hidden)
    params = net.init(KEY, xs, zeros, zeros)

    def loss(params):
        return jnp.sum(jnp.tanh(net.apply(params, xs, zeros, zeros)[0]))

    first = jax.jit(jax.grad(loss))(params)
    second = jax.jit(jax.grad(loss))(params)
    for a, r in zip(leaves(first), leaves(second), strict=True):
        assert np.array_equal(a, r)
