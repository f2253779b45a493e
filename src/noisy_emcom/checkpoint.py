"""Atomic, checksummed checkpoints that cannot run code when read
(docs/science.md#checkpoints-and-resume, docs/differences.md D9).

File layout: MAGIC (8 bytes) | SHA-256 of the body (32 bytes) | body. The body is an
uncompressed .npz archive, read with `np.load(allow_pickle=False)`: one member per array and a
member `__tree__` holding UTF-8 JSON that describes the payload (plain values inline, arrays by
member name). NamedTuples (optax states) are stored as lists of their fields and rebuilt by
`restore_like` from a freshly initialised template of the same config, with every structure,
shape and dtype checked. Nothing in the file is ever unpickled or executed.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from noisy_emcom.files import atomic_write_bytes, remove_stale_temps

MAGIC = b"NEMCKPT2"
OLD_MAGIC = b"NEMCKPT1"  # the former pickle-based format, never read
FORMAT_VERSION = 2
TREE_MEMBER = "__tree__"
ARRAY_KINDS = "biufc"  # bool, integers, floats, complex: stored by .npz without pickle
NODE_KINDS = {"array", "value", "dict", "list", "tuple"}


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or of another format."""


class OldFormatError(CheckpointError):
    """A checkpoint of the former pickle-based format (not read: unpickling can run code)."""


# --------------------------------------------------------------------------------------------
# Payload ↔ (JSON tree, arrays)
# --------------------------------------------------------------------------------------------


def _encode(x: Any, arrays: dict[str, np.ndarray], where: str) -> dict[str, Any]:
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        a = np.asarray(jax.device_get(x))
        if a.dtype.kind not in ARRAY_KINDS:
            raise TypeError(f"cannot store {where}: arrays of dtype {a.dtype} are not supported")
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            raise FloatingPointError(f"{where} has non-finite values")
        name = str(len(arrays))
        arrays[name] = a
        return {"array": name, "scalar": isinstance(x, np.generic)}
    if x is None or isinstance(x, (bool, int, float, str)):
        return {"value": x}
    if isinstance(x, Mapping):
        if not all(isinstance(k, str) for k in x):
            raise TypeError(f"cannot store {where}: mapping keys must be strings")
        return {"dict": [[k, _encode(v, arrays, f"{where}/{k}")] for k, v in x.items()]}
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # NamedTuple → list of its fields
        return {
            "namedtuple": type(x).__name__,
            "fields": list(x._fields),
            "list": [_encode(v, arrays, f"{where}.{f}") for f, v in zip(x._fields, x, strict=True)],
        }
    if isinstance(x, (list, tuple)):
        kind = "tuple" if isinstance(x, tuple) else "list"
        return {kind: [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(x)]}
    raise TypeError(f"cannot store {where}: values of type {type(x).__name__} are not supported")


def _decode(node: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if not isinstance(node, dict) or len(node.keys() & NODE_KINDS) != 1:
        raise ValueError(f"unexpected tree node {str(node)[:80]!r}")
    if "array" in node:
        a = arrays[node["array"]]
        return a[()] if node.get("scalar") else a
    if "value" in node:
        if not (node["value"] is None or isinstance(node["value"], (bool, int, float, str))):
            raise ValueError("a plain value must be null, a boolean, a number or a string")
        return node["value"]
    if "dict" in node:
        return {str(k): _decode(v, arrays) for k, v in node["dict"]}
    items = [_decode(v, arrays) for v in node.get("list", node.get("tuple"))]
    return tuple(items) if "tuple" in node else items


def encode(payload: Mapping[str, Any], path: str | Path = "checkpoint") -> bytes:
    """The file's bytes (header and body) for `payload`; non-finite arrays are refused."""
    arrays: dict[str, np.ndarray] = {}
    try:
        tree = _encode(dict(payload), arrays, "")
    except FloatingPointError as err:
        raise FloatingPointError(
            f"refusing to write {path}: {err}; the previous checkpoint is kept"
        ) from None
    doc = json.dumps({"format_version": FORMAT_VERSION, "payload": tree}).encode()
    buf = io.BytesIO()
    np.savez(buf, **{TREE_MEMBER: np.frombuffer(doc, np.uint8)}, **arrays)
    body = buf.getvalue()
    return MAGIC + hashlib.sha256(body).digest() + body


def decode(data: bytes, path: str | Path = "checkpoint") -> dict[str, Any]:
    """The payload of a checkpoint file's bytes; CheckpointError for any bad file."""
    if data[:8] == OLD_MAGIC:
        raise OldFormatError(
            f"{path}: old pickle-based checkpoint format (NEMCKPT1), which is not read because "
            "unpickling can run code; retrain, or convert a file you trust with "
            "`python workflow/scripts/convert_checkpoint.py --trusted`"
        )
    if len(data) < 40 or data[:8] != MAGIC:
        raise CheckpointError(f"{path} is not a noisy_emcom checkpoint (bad header)")
    body = data[40:]
    if hashlib.sha256(body).digest() != data[8:40]:
        raise CheckpointError(f"{path}: checksum mismatch (truncated or corrupt file)")
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        doc = json.loads(arrays.pop(TREE_MEMBER).tobytes().decode())
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {doc.get('format_version')} != {FORMAT_VERSION}")
        payload = _decode(doc["payload"], arrays)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, MemoryError,
            OSError, zipfile.BadZipFile) as err:  # fmt: skip
        raise CheckpointError(f"{path}: malformed checkpoint body ({err})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: malformed checkpoint body (payload is not a mapping)")
    return payload


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write `payload` (nested mappings, lists, tuples, NamedTuples, arrays and plain values)
    atomically; FloatingPointError (nothing written) when an array has NaN or inf."""
    path = Path(path)
    data = encode(payload, path)
    remove_stale_temps(path.parent, ".*.ckpt.*.tmp")
    atomic_write_bytes(path, data)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    return decode(data, path)


def field(payload: Mapping[str, Any], key: str, path: str | Path) -> Any:
    """payload[key], or a CheckpointError naming the file."""
    if key not in payload:
        raise CheckpointError(f"{path}: no field {key!r} (not a checkpoint of this kind)")
    return payload[key]


def _skeleton(tree: Any) -> Any:
    """`tree` as the loader returns it: NamedTuples become lists, mappings dicts."""
    if isinstance(tree, Mapping):
        return {k: _skeleton(v) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return [_skeleton(v) for v in tree]
    if isinstance(tree, (list, tuple)):
        return type(tree)(_skeleton(v) for v in tree)
    return tree


def restore_like(saved: Any, template: Any, where: str, path: str | Path) -> Any:
    """`saved` (a loaded tree) rebuilt with the pytree structure of `template`, as device
    arrays; CheckpointError naming `where` when the structure, a shape or a dtype differs."""
    expect = jax.tree_util.tree_structure(_skeleton(template))
    got = jax.tree_util.tree_structure(saved)
    if got != expect:
        raise CheckpointError(f"{path}: {where} has another structure than the config's")
    named, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = jax.tree_util.tree_leaves(saved)
    for (key, ref), leaf in zip(named, leaves, strict=True):
        a = np.asarray(leaf)
        if a.shape != tuple(ref.shape) or a.dtype != ref.dtype:
            raise CheckpointError(
                f"{path}: {where}{jax.tree_util.keystr(key)} is {a.dtype}{list(a.shape)}, the "
                f"config and data need {ref.dtype}{list(ref.shape)}"
            )
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(x) for x in leaves])


# --------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------


def periodic_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:09d}.ckpt"


def final_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "final.ckpt"


def latest_valid(
    run_dir: str | Path,
    final_name: str = "final.ckpt",
    accept: Callable[[Path, dict[str, Any]], Any] | None = None,
) -> tuple[Path, dict[str, Any], Any] | None:
    """Newest usable checkpoint of a run (final first, then periodic by step) → (path, payload,
    accept(path, payload)), or None when there is none. Damaged ones, and those `accept`
    refuses with a CheckpointError, are skipped with a warning; when every one is refused, or
    one has the old format, a CheckpointError stops the run (nothing is retrained over them)."""
    run_dir = Path(run_dir)
    candidates = [run_dir / final_name] + sorted(
        (run_dir / "checkpoints").glob("step_*.ckpt"), reverse=True
    )
    refused = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            payload = load_checkpoint(path)
            return path, payload, accept(path, payload) if accept else None
        except OldFormatError:
            raise
        except CheckpointError as err:
            warnings.warn(f"skipping checkpoint: {err}", stacklevel=2)
            refused.append(str(err))
    if refused:
        raise CheckpointError(
            f"no checkpoint of {run_dir} can be resumed ({'; '.join(refused)}); move them away "
            "to start afresh"
        )
    return None


def prune_periodic(run_dir: str | Path, keep: int) -> None:
    """Keep the newest `keep` periodic checkpoints (the final one is never pruned)."""
    paths = sorted((Path(run_dir) / "checkpoints").glob("step_*.ckpt"))
    for path in paths[: max(len(paths) - keep, 0)]:
        path.unlink()


def check_params(path: str | Path, cfg, speaker: Any, listener: Any) -> tuple[Any, Any]:
    """Speaker and listener parameters checked against those the config's networks build
    (names, shapes, dtypes; feature width from the speaker) → device trees."""
    from noisy_emcom import train

    try:
        dim = int(np.shape(speaker["speaker/initial_state"]["w"])[0])
    except (KeyError, TypeError, IndexError):
        raise CheckpointError(f"{path}: speaker parameters lack 'speaker/initial_state'") from None
    spk_ref, lst_ref = train.param_shapes(cfg, dim)
    speaker = restore_like(speaker, spk_ref, "speaker", path)
    try:
        return speaker, restore_like(listener, lst_ref, "listener", path)
    except CheckpointError:  # a listener without its value head serves the tests as well
        bare = train.param_shapes(cfg, dim, value=False)[1]
        if jax.tree_util.tree_structure(bare) != jax.tree_util.tree_structure(listener):
            raise
        return speaker, restore_like(listener, bare, "listener", path)


def load_model(path: str | Path):
    """(config, speaker params, listener params, step) of a training checkpoint, the
    parameters checked against the networks of its config."""
    from noisy_emcom.configs import from_json

    payload = load_checkpoint(path)
    try:
        cfg = from_json(field(payload, "config", path))
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable config
        raise CheckpointError(f"{path}: unreadable config ({err})") from None
    step = field(payload, "step", path)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: field 'step' = {step!r} is not a step count")
    speaker, listener = check_params(
        path, cfg, field(payload, "speaker", path), field(payload, "listener", path)
    )
    return cfg, speaker, listener, step
