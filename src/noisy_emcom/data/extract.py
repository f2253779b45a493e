"""Batched, jitted BYOL ResNet-50 feature extraction from image files (docs/data.md)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from noisy_emcom import encoders
from noisy_emcom.data.raw import byol_preprocess, decode_rgb


def _load(path: Path, image_size: int) -> np.ndarray:
    return byol_preprocess(decode_rgb(path), image_size)


def extract_features(
    paths: Sequence[str | Path],
    params,
    state,
    *,
    batch_size: int = 64,
    image_size: int = 224,
    workers: int = 2,
    desc: str = "extract",
) -> np.ndarray:
    """Features [N, 2048] float32 of image files, in order.

    Images are decoded and preprocessed on the host (threads), padded to full batches and run
    through one jitted ResNet-50 apply; a file that does not decode stops with its name.
    """
    net = encoders.resnet50()
    fwd = jax.jit(lambda p, s, x: net.apply(p, s, None, x)[0])
    out = np.zeros((len(paths), encoders.BYOL_FEATURE_DIM), np.float32)
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(paths), desc=desc, unit="img") as bar,
    ):
        for a in range(0, len(paths), batch_size):
            chunk = paths[a : a + batch_size]
            x = np.stack(list(pool.map(lambda p: _load(Path(p), image_size), chunk)))
            if len(x) < batch_size:
                x = np.concatenate([x, np.zeros((batch_size - len(x), *x.shape[1:]), x.dtype)])
            out[a : a + len(chunk)] = np.asarray(fwd(params, state, x))[: len(chunk)]
            bar.update(len(chunk))
    return out
