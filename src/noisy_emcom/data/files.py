"""Data files written atomically (`noisy_emcom.files.atomic_write`): .npz, .npy, JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from noisy_emcom.files import atomic_write, atomic_write_text


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write an uncompressed .npz atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})

    return atomic_write(path, write)


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write a .npy atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, np.asarray(array))

    return atomic_write(path, write)


def save_json(path: str | Path, obj) -> Path:
    """Write JSON (indented, sorted keys) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
