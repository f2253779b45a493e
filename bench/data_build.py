"""Benchmark of the data stage: build the shapes datasets, ResNet-50 extraction throughput,
encoder accuracy. Prints figures; asserts nothing.

Defaults are the paper-scale shapes build (40k/5k/5k, encoder 600 steps, width 512); on a
small CPU pass smaller --num-* / --steps (the printout says what was run).
Peak memory is resource.getrusage(RUSAGE_SELF).ru_maxrss of this process.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from noisy_emcom import encoders
from noisy_emcom.data import builders, loader


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(label, fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    dt = time.perf_counter() - t
    print(f"{label:<34s} {dt:9.1f} s   peak RSS {peak_mb():8.0f} MB", flush=True)
    return out, dt


def bench_shapes(a, work: Path) -> None:
    sizes = {"train": a.num_train, "valid": a.num_valid, "test": a.num_test}
    total = 0.0
    for s, n in sizes.items():
        _, dt = timed(f"generate {s} ({n})", builders.make_shapes, s, n, 0, work / f"{s}.npz")
        total += dt
    metrics, dt = timed(
        f"train encoder ({a.steps} steps, w {a.width})",
        builders.train_encoder,
        work / "train.npz",
        work / "enc.npz",
        work / "enc.json",
        width=a.width,
        steps=a.steps,
    )
    total += dt
    acc = {}
    for s in sizes:
        r, dt = timed(
            f"encode {s}",
            builders.encode_shapes,
            work / "enc.npz",
            work / f"{s}.npz",
            work / f"feat_{s}.npz",
        )
        acc[s] = r["accuracy"]
        total += dt
    _, dt = timed(
        "write 3 TFDS variants",
        builders.build_shapes,
        {s: work / f"{s}.npz" for s in sizes},
        {s: work / f"feat_{s}.npz" for s in sizes},
        work / "tfds",
        encoder_params=work / "enc.npz",
        encoder_metrics=work / "enc.json",
    )
    total += dt
    d, dt = timed(
        "load shapes_logits train (numpy)",
        loader.load_split,
        "shapes_logits",
        "train",
        work / "tfds",
    )
    print(
        f"  loaded {d['logit'].shape} float32 in {dt:.2f} s ({d['logit'].shape[0] / dt:.0f} rows/s)"
    )
    print(f"shapes build total {total:.1f} s; final train loss {metrics['final_loss']:.3f}")
    print("encoder accuracy: " + ", ".join(f"{s} {v:.3f}" for s, v in acc.items()))


def bench_resnet(a) -> None:
    params, state = encoders.init_resnet50(0)
    net = encoders.resnet50()
    fwd = jax.jit(lambda p, s, x: net.apply(p, s, None, x)[0])
    x = np.random.default_rng(0).standard_normal((a.resnet_batch, 224, 224, 3)).astype(np.float32)
    t = time.perf_counter()
    fwd(params, state, x).block_until_ready()
    print(f"resnet50 compile + first batch {time.perf_counter() - t:9.1f} s")
    t = time.perf_counter()
    for _ in range(a.resnet_batches):
        fwd(params, state, x).block_until_ready()
    dt = time.perf_counter() - t
    n = a.resnet_batch * a.resnet_batches
    print(
        f"resnet50 extraction: {n / dt:.2f} images/s (224x224, batch {a.resnet_batch}, "
        f"{n} images, random params; preprocessing not included)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--num-train", type=int, default=40000)
    p.add_argument("--num-valid", type=int, default=5000)
    p.add_argument("--num-test", type=int, default=5000)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--resnet-batch", type=int, default=16)
    p.add_argument("--resnet-batches", type=int, default=3)
    p.add_argument("--skip-shapes", action="store_true")
    p.add_argument("--skip-resnet", action="store_true")
    a = p.parse_args()
    print(f"devices: {jax.devices()}")
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_shapes:
            bench_shapes(a, Path(tmp))
    if not a.skip_resnet:
        bench_resnet(a)


if __name__ == "__main__":
    main()
