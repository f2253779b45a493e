"""Atomic file writes: every output is written under a temporary name, then renamed."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write an uncompressed .npz atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        with tmp.open("wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write a .npy atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        with tmp.open("wb") as f:
            np.save(f, np.asarray(array))
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_json(path: str | Path, obj) -> Path:
    """Write JSON (indented, sorted keys) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
