#!/usr/bin/env python
"""Wall time of each test mode (docs/tests.md) for one checkpoint.

    python bench/eval_time.py --checkpoint results/runs/<run_id>/final.ckpt \
        --dataset shapes_logits --data-dir results/tfds [--config.eval.epochs=1 ...]
    python bench/eval_time.py --random lg_rlrl:debug --n-test 1024 --dim 32 \
        --config.eval.batch_sizes="(16,64)" --config.eval.topsim_ratios="(0.2,0.2)" \
        --config.eval.epochs=1

`--random PRESET:SWEEP` times a randomly initialised model of that preset (with `--config.*`
overrides of any field) on a Gaussian test table [n_test, dim] instead of a checkpoint.
Modes run in the order message, channel, input, topsim, measures in one process: the runners
(one compilation per decoding and K) are shared, so the first mode carries the compilations
of the non-topsim tests; each line says how many settings the mode ran.
"""

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from noisy_emcom import configs, evaluate, networks
from noisy_emcom.game import Nets


def random_model(spec: str, overrides: dict, dim: int) -> evaluate.Model:
    preset, _, sweep = spec.partition(":")
    cfg = configs.get_config(preset, sweep, overrides)
    nets = Nets(networks.make_speaker(cfg), networks.make_listener(cfg))
    x = jnp.zeros((cfg.batch_size, dim), jnp.float32)
    k1, k2 = jax.random.split(jax.random.PRNGKey(cfg.random_seed))
    speaker = nets.speaker.init(k1, x, k1)
    listener = nets.listener.init(k2, jnp.zeros((cfg.batch_size, cfg.length), jnp.int32), x)
    return evaluate.build_model(cfg, speaker, listener, 0)


def main(argv):
    overrides, rest = configs.split_overrides(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--random", default="", help="PRESET:SWEEP of a random model")
    parser.add_argument("--dataset", default="")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--n-test", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=32)
    args = parser.parse_args(rest)
    if bool(args.checkpoint) == bool(args.random):
        parser.error("give exactly one of --checkpoint and --random")

    if args.checkpoint:
        model = evaluate.restore_model(args.checkpoint, overrides)
        data = evaluate.load_eval_data(
            args.dataset or model.cfg.dataset.name, args.data_dir or model.cfg.dataset.data_dir
        )
    else:
        model = random_model(args.random, overrides, args.dim)
        rng = np.random.default_rng(0)
        data = evaluate.EvalData(
            "gaussian",
            rng.standard_normal((args.n_test, args.dim)).astype(np.float32),
            rng.integers(0, 2, (args.n_test, 40)).astype(bool),
        )
    cfg, ev = model.cfg, model.cfg.eval
    n_params = sum(
        int(np.size(p))
        for p in jax.tree_util.tree_leaves((model.speaker_params, model.listener_params))
    )
    print(
        f"model {configs.run_id(cfg)}: {n_params} parameters; test split "
        f"{data.inputs.shape[0]} × {data.inputs.shape[1]}; K {tuple(ev.batch_sizes)}, "
        f"decodings {tuple(ev.decodings)}, epochs {ev.epochs}, repetitions {ev.repetitions}; "
        f"backend {jax.default_backend()}"
    )
    message_rows = None
    for mode in ("message", "channel", "input", "topsim", "measures"):
        tic = time.perf_counter()
        table = evaluate.run_test(mode, model, data, message_rows)
        seconds = time.perf_counter() - tic
        if mode == "message":
            message_rows = table
        print(f"{mode:9s} {seconds:8.2f} s  {len(table):5d} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
