"""Atomic, checksummed checkpoints (docs/science.md#checkpoints-and-resume, docs/differences.md D9).

File layout: MAGIC (8 bytes) | SHA-256 of the payload (32 bytes) | pickled payload. The payload
is a dict of plain Python/numpy values; `format_version` is stored inside it too.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

MAGIC = b"NEMCKPT1"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or of another format."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_numpy(tree: Any) -> Any:
    """Device arrays → numpy arrays (nested dicts/tuples kept)."""

    def convert(x):
        return np.asarray(x) if isinstance(x, (jax.Array, np.ndarray, np.generic)) else x

    return jax.tree_util.tree_map(convert, jax.device_get(tree))


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    body = pickle.dumps(
        {"format_version": FORMAT_VERSION, **to_numpy(payload)}, protocol=pickle.HIGHEST_PROTOCOL
    )
    atomic_write_bytes(path, MAGIC + hashlib.sha256(body).digest() + body)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if len(data) < 40 or data[:8] != MAGIC:
        raise CheckpointError(f"{path} is not a noisy_emcom checkpoint (bad header)")
    body = data[40:]
    if hashlib.sha256(body).digest() != data[8:40]:
        raise CheckpointError(f"{path}: checksum mismatch (truncated or corrupt file)")
    payload = pickle.loads(body)
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {payload.get('format_version')} != {FORMAT_VERSION}"
        )
    return payload


def periodic_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:09d}.ckpt"


def final_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "final.ckpt"


def latest_valid(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """Newest readable checkpoint of a run (final first, then periodic by step); corrupt ones
    are skipped with a warning."""
    candidates = [final_path(run_dir)] + sorted(
        (Path(run_dir) / "checkpoints").glob("step_*.ckpt"), reverse=True
    )
    for path in candidates:
        if not path.exists():
            continue
        try:
            return path, load_checkpoint(path)
        except CheckpointError as err:
            warnings.warn(f"skipping checkpoint: {err}", stacklevel=2)
    return None


def prune_periodic(run_dir: str | Path, keep: int) -> None:
    """Keep the newest `keep` periodic checkpoints (the final one is never pruned)."""
    paths = sorted((Path(run_dir) / "checkpoints").glob("step_*.ckpt"))
    for path in paths[: max(len(paths) - keep, 0)]:
        path.unlink()


def load_model(path: str | Path):
    """(config, speaker params, listener params, step) of a training checkpoint."""
    from noisy_emcom.configs import from_json

    payload = load_checkpoint(path)
    missing = {"speaker", "listener", "step", "config"} - set(payload)
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint (missing {sorted(missing)})")
    return (
        from_json(payload["config"]),
        payload["speaker"],
        payload["listener"],
        int(payload["step"]),
    )
