"""Learning on a small fixed synthetic table (64 Gaussian clusters, D = 32, 16 candidates).

Small networks (LSTM 64, hidden 64) and Adam 1e-3 for both agents; everything else is the
paper's preset. Chance is 1/16 = 0.0625. Thresholds sit well below what these seeds reach
and far above chance. Measured (accuracy at erasure p = 0 / 0.5): LG(RL) after 6,000 steps
0.52 / 0.22; NLG(0.5) after 10,000 steps 0.47 / 0.42 (after 6,000 it is still at 0.19 / 0.17:
learning through the erasure ramp takes longer).
"""

import jax
import numpy as np
import pytest
from conftest import small_config

from noisy_emcom import channels, game, train
from noisy_emcom.synthetic import clustered_features

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("learning")]

TABLE, _ = clustered_features(4096, dim=32, n_clusters=64, noise=0.1, seed=0)
TEST = TABLE  # the same clusters; chance and difficulty are those of training
SCHEDULE = {"batch_size": 16, "steps_per_call": 500, "log_every": 500, "checkpoint_every": 500}


def fit(tmp_path_factory, preset, sweep, steps):
    cfg = small_config(preset, sweep, training_steps=steps, **SCHEDULE)
    out = tmp_path_factory.mktemp(preset)
    return cfg, train.train(cfg, TABLE, out, progress=False).state


def accuracy(cfg, state, p, batches=64, k=16):
    """Mean test accuracy over `batches` batches of K candidates, sampled speaker, erasure p."""
    fn = jax.jit(game.make_eval_batch(cfg, train.make_nets(cfg), "sample"))
    chan = channels.erasure(p, cfg.length)
    rng = np.random.default_rng(1)
    correct = []
    for i in range(batches):
        x = TEST[rng.choice(len(TEST), k, replace=False)]
        out = fn(state.speaker, state.listener, x, jax.random.PRNGKey(i), chan, 0.0, False)
        correct.append(np.asarray(out.correct))
    return float(np.mean(correct))


@pytest.fixture(scope="module")
def lg_rl(tmp_path_factory):
    return fit(tmp_path_factory, "lg_rlrl", "debug", 6000)


def test_lg_s_learns(tmp_path_factory):
    cfg, state = fit(tmp_path_factory, "lg_rlss", "debug", 2000)
    acc = accuracy(cfg, state, 0.0)
    assert acc > 0.25, acc  # chance 0.0625


def test_lg_rl_learns(lg_rl):
    cfg, state = lg_rl
    acc = accuracy(cfg, state, 0.0)
    assert acc > 0.25, acc


def test_nlg_keeps_accuracy_under_erasure_better_than_lg_rl(tmp_path_factory, lg_rl):
    cfg_nlg, nlg = fit(tmp_path_factory, "nlg_rlrl", "debug_0.5", 10000)
    cfg_lg, lg = lg_rl
    nlg_noisy, lg_noisy = accuracy(cfg_nlg, nlg, 0.5), accuracy(cfg_lg, lg, 0.5)
    assert nlg_noisy > lg_noisy, (nlg_noisy, lg_noisy)
    # The NLG listener reads erasures: its relative loss from p = 0 to 0.5 is smaller.
    assert nlg_noisy / accuracy(cfg_nlg, nlg, 0.0) > lg_noisy / accuracy(cfg_lg, lg, 0.0)
