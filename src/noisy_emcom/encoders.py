"""Feature encoders: the BYOL ResNet-50 (docs/data.md) and the small `shapes` CNN (docs/data.md).

Both are Haiku modules. The ResNet-50 loads the released BYOL checkpoint format (a pickle of
{`experiment_state`, `step`, `rng`}) without the original training package.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from noisy_emcom import xla
from noisy_emcom.data.errors import DataError
from noisy_emcom.networks import PatchConv2D
from noisy_emcom.progress import Progress

# --------------------------------------------------------------------------------------------
# BYOL ResNet-50 v1
# --------------------------------------------------------------------------------------------

RESNET_PREFIX = "res_net50"
BLOCKS_PER_GROUP = (3, 4, 6, 3)
GROUP_WIDTHS = (256, 512, 1024, 2048)
GROUP_STRIDES = (1, 2, 2, 2)
BYOL_FEATURE_DIM = 2048
BN_EPS = 1e-5


class _Average(hk.Module):
    """Holds one moving statistic as state `average` (the EMA module of the checkpoint)."""

    def __call__(self, shape: tuple[int, ...], init: float) -> jax.Array:
        return hk.get_state("average", shape, jnp.float32, init=hk.initializers.Constant(init))


class _BatchNorm(hk.Module):
    """Inference BatchNorm: (x − mean_ema)·scale/√(var_ema + 1e-5) + offset.

    Params `scale`, `offset` and states `mean_ema/average`, `var_ema/average` have shape
    (1,1,1,C).
    """

    def __init__(self, name: str):
        super().__init__(name=name)
        self.mean_ema, self.var_ema = _Average(name="mean_ema"), _Average(name="var_ema")

    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (1, 1, 1, x.shape[-1])
        scale = hk.get_parameter("scale", shape, init=jnp.ones)
        offset = hk.get_parameter("offset", shape, init=jnp.zeros)
        mean, var = self.mean_ema(shape, 0.0), self.var_ema(shape, 1.0)
        return (x - mean) * scale * jax.lax.rsqrt(var + BN_EPS) + offset


class _Bottleneck(hk.Module):
    """1×1 (w/4) → 3×3 (w/4, stride) → 1×1 (w), each + BN; ReLU(residual + shortcut).

    Submodules are built in `__init__` so that their paths use Haiku's `/~/` separator, as
    in the BYOL checkpoint.
    """

    def __init__(self, width: int, stride: int, projection: bool, name: str):
        super().__init__(name=name)
        mid = width // 4
        self.convs = [
            hk.Conv2D(c, k, stride=st, with_bias=False, padding="SAME", name=f"conv_{i}")
            for i, (c, k, st) in enumerate(((mid, 1, 1), (mid, 3, stride), (width, 1, 1)))
        ]
        self.bns = [_BatchNorm(name=f"batchnorm_{i}") for i in range(3)]
        self.shortcut = None
        if projection:
            self.shortcut = (
                hk.Conv2D(
                    width, 1, stride=stride, with_bias=False, padding="SAME", name="shortcut_conv"
                ),
                _BatchNorm(name="shortcut_batchnorm"),
            )

    def __call__(self, x: jax.Array) -> jax.Array:
        shortcut = x
        if self.shortcut is not None:
            conv, bn = self.shortcut
            shortcut = bn(conv(x))
        h = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            h = bn(conv(h))
            if i < 2:
                h = jax.nn.relu(h)
        return jax.nn.relu(h + shortcut)


class _BlockGroup(hk.Module):
    """`num_blocks` bottlenecks; block 0 has the stride and the projection shortcut."""

    def __init__(self, num_blocks: int, width: int, stride: int, name: str):
        super().__init__(name=name)
        self.blocks = [
            _Bottleneck(width, stride if j == 0 else 1, j == 0, name=f"block_{j}")
            for j in range(num_blocks)
        ]

    def __call__(self, x: jax.Array) -> jax.Array:
        for block in self.blocks:
            x = block(x)
        return x


class ResNet50(hk.Module):
    """ResNet-50 v1 trunk: images [B,H,W,3] (normalised) → pooled features [B, 2048].

    Stem 7×7/2 conv (64) → BN → ReLU → 3×3/2 max-pool; groups of (3, 4, 6, 3) bottlenecks of
    widths (256, 512, 1024, 2048), strides (1, 2, 2, 2); spatial mean of the last output.
    """

    def __init__(self, name: str = RESNET_PREFIX):
        super().__init__(name=name)
        self.initial_conv = hk.Conv2D(
            64, 7, stride=2, with_bias=False, padding="SAME", name="initial_conv"
        )
        self.initial_bn = _BatchNorm(name="initial_batchnorm")
        self.groups = [
            _BlockGroup(n, w, s, name=f"block_group_{g}")
            for g, (n, w, s) in enumerate(
                zip(BLOCKS_PER_GROUP, GROUP_WIDTHS, GROUP_STRIDES, strict=True)
            )
        ]

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.relu(self.initial_bn(self.initial_conv(x)))
        h = hk.max_pool(h, window_shape=(1, 3, 3, 1), strides=(1, 2, 2, 1), padding="SAME")
        for group in self.groups:
            h = group(h)
        return jnp.mean(h, axis=(1, 2))


def resnet50() -> hk.TransformedWithState:
    """The transformed ResNet-50: `apply(params, state, None, x[B,H,W,3]) -> (f[B,2048], state)`."""
    return hk.transform_with_state(lambda x: ResNet50()(x))


def init_resnet50(seed: int = 0) -> tuple[dict, dict]:
    """Random (params, state) drawn with numpy (fast, no XLA init): conv weights
    N(0, 1/fan_in), BN scale 1, offset 0, mean 0, var 1. For tests and benchmarks."""
    params_t, state_t = jax.eval_shape(
        resnet50().init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3), jnp.float32)
    )
    rng = np.random.default_rng(seed)
    params = {}
    for module in sorted(params_t):
        params[module] = {}
        for name, sd in sorted(params_t[module].items()):
            if name == "w":
                fan_in = int(np.prod(sd.shape[:-1]))
                value = rng.standard_normal(sd.shape) / np.sqrt(fan_in)
            else:
                value = np.full(sd.shape, 1.0 if name == "scale" else 0.0)
            params[module][name] = value.astype(np.float32)
    state = {
        m: {
            k: np.full(v.shape, 1.0 if m.endswith("var_ema") and k == "average" else 0.0, v.dtype)
            for k, v in leaves.items()
        }
        for m, leaves in state_t.items()
    }
    return params, state


# --------------------------------------------------------------------------------------------
# BYOL checkpoint loading
# --------------------------------------------------------------------------------------------

_SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("copy_reg", "_reconstructor"),
    ("__builtin__", "object"),
    ("_codecs", "encode"),
    ("builtins", "bytes"),
    ("builtins", "complex"),
}


class Stub:
    """Stand-in for an unknown pickled class; keeps positional args, state and items."""

    _stub_path = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj._args, obj._kwargs, obj._state, obj._items, obj._list = args, kwargs, None, {}, []
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self._state = state

    def __setitem__(self, key, value):
        self._items[key] = value

    def append(self, value):
        self._list.append(value)

    def extend(self, values):
        self._list.extend(values)

    def __repr__(self):
        return f"Stub({self._stub_path})"


class _StubUnpickler(pickle.Unpickler):
    """Unpickler that resolves numpy/builtin containers and stubs every other class."""

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if module in ("numpy", "numpy.core.numeric", "numpy._core.numeric") and name in (
            "dtype",
            "ndarray",
            "_frombuffer",
        ):
            return super().find_class(module, name)
        if module.startswith("numpy") and name.startswith("_reconstruct"):
            return super().find_class(module, name)
        if module == "numpy.dtypes" or (module.startswith("numpy") and name.endswith("DType")):
            return super().find_class(module, name)
        return type(name, (Stub,), {"_stub_path": f"{module}.{name}"})


def _plain(obj: Any) -> Any:
    """Stubs and containers → plain dicts, lists and numpy arrays (recursively)."""
    if isinstance(obj, Stub):
        if obj._items:
            return {k: _plain(v) for k, v in obj._items.items()}
        if isinstance(obj._state, dict) and obj._state:
            return {k: _plain(v) for k, v in obj._state.items()}
        if len(obj._args) == 1 and isinstance(obj._args[0], Mapping | list):
            return _plain(obj._args[0])
        return tuple(_plain(a) for a in obj._args)
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return (
            type(obj)(_plain(v) for v in obj)
            if not hasattr(obj, "_fields")
            else tuple(_plain(v) for v in obj)
        )
    return obj


EXPERIMENT_STATE_FIELDS = (
    "online_params",
    "target_params",
    "online_state",
    "target_state",
    "opt_state",
)


def read_byol_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Read `online_params` and `online_state` from a BYOL pickle → (params, state) as
    flat `{module_path: {name: np.ndarray}}` dicts (unknown classes stubbed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        with path.open("rb") as f:
            raw = _StubUnpickler(io.BufferedReader(f)).load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(f"{path}: cannot read checkpoint pickle: {e}") from e
    top = _plain(raw)
    if not isinstance(top, dict) or "experiment_state" not in top:
        raise DataError(f"{path}: not a BYOL checkpoint (no 'experiment_state' key)")
    es = top["experiment_state"]
    if isinstance(es, tuple) and len(es) == len(EXPERIMENT_STATE_FIELDS):
        es = dict(zip(EXPERIMENT_STATE_FIELDS, es, strict=True))
    if not isinstance(es, dict) or "online_params" not in es or "online_state" not in es:
        raise DataError(f"{path}: 'experiment_state' has no online_params/online_state")
    return es["online_params"], es["online_state"]


def _flat_leaves(tree: Mapping) -> Iterator[tuple[str, str, Any]]:
    """(module_path, name, leaf) of a `{module: {name: leaf}}` mapping."""
    for module, leaves in tree.items():
        if not isinstance(leaves, Mapping):
            raise DataError(f"checkpoint entry {module!r} is not a mapping of arrays")
        for name, leaf in leaves.items():
            yield str(module), str(name), leaf


def _normalise_path(path: str, expected: set[str]) -> str | None:
    """Checkpoint module path → expected path: keep the part from `res_net50/~/` onwards and
    drop an optional `_1` suffix on a component when that yields an expected path."""
    marker = RESNET_PREFIX + "/~/"
    if marker not in path:
        return None
    path = RESNET_PREFIX + "/~/" + path.split(marker, 1)[1]
    if path in expected:
        return path
    parts = path.split("/~/")
    for i, part in enumerate(parts):
        m = re.fullmatch(r"(.+)_1", part)
        if m:
            candidate = "/~/".join(parts[:i] + [m.group(1)] + parts[i + 1 :])
            if candidate in expected:
                return candidate
    return path


def _match(
    tree: Mapping,
    template: Mapping,
    what: str,
    source: str,
    only_names: tuple[str, ...] | None = None,
) -> dict:
    """Fill `template` ({module: {name: array}}) from `tree`, checking names and shapes.

    Modules outside the `res_net50/~/` trunk are ignored; with `only_names`, other leaf names
    (e.g. the EMA `hidden`/`counter`) are ignored too.
    """
    expected = set(template)
    found: dict[tuple[str, str], np.ndarray] = {}
    for module, name, leaf in _flat_leaves(tree):
        target = _normalise_path(module, expected)
        if target is None or (only_names is not None and name not in only_names):
            continue
        if target not in expected or name not in template[target]:
            raise DataError(
                f"{source}: unexpected {what} {module}/{name} (no matching ResNet-50 entry)"
            )
        if (target, name) in found:
            raise DataError(f"{source}: {what} {target}/{name} appears twice")
        found[(target, name)] = np.asarray(leaf)
    out: dict[str, dict[str, np.ndarray]] = {}
    for module in sorted(template):
        out[module] = {}
        for name in sorted(template[module]):
            want = tuple(template[module][name].shape)
            if (module, name) not in found:
                raise DataError(f"{source}: missing {what} {module}/{name} (shape {want})")
            got = tuple(found[(module, name)].shape)
            if got != want:
                raise DataError(
                    f"{source}: {what} {module}/{name} has shape {got}, expected {want}"
                )
            out[module][name] = found[(module, name)].astype(np.float32)
    return out


def load_byol_resnet50(path: str | Path) -> tuple[hk.Params, hk.State]:
    """Load a BYOL checkpoint into this module's (params, state), checking every name and shape.

    Parameter modules are matched by pattern (the `res_net50/~/` trunk prefix, an optional
    `_1` suffix); moving statistics come from `<bn>/~/mean_ema` and `<bn>/~/var_ema`, field
    `average`. The first missing, unexpected or mis-shaped entry stops with a DataError.
    """
    raw_params, raw_state = read_byol_checkpoint(path)
    params_t, state_t = jax.eval_shape(
        resnet50().init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3), jnp.float32)
    )
    params = _match(raw_params, params_t, "parameter", str(path))
    avg_t = {m: {"average": v["average"]} for m, v in state_t.items()}
    averages = _match(raw_state, avg_t, "state", str(path), only_names=("average",))
    state = {}
    for module, leaves in state_t.items():
        state[module] = {k: np.zeros(v.shape, v.dtype) for k, v in leaves.items()}
        state[module]["average"] = averages[module]["average"]
    return params, state


# --------------------------------------------------------------------------------------------
# Small CNN encoder for `shapes`
# --------------------------------------------------------------------------------------------

SHAPES_CONVS = ((32, 1), (32, 2), (64, 1), (64, 2), (64, 2))


def shapes_cnn(width: int = 512, num_classes: int = 48) -> hk.Transformed:
    """`apply(params, None, images uint8 [B,64,64,3]) -> (feature [B,width], logits [B,48])`.

    x = image/127.5 − 1; five 3×3 "SAME" convs (32 s1, 32 s2, 64 s1, 64 s2, 64 s2) with ReLU
    (`PatchConv2D`, parameters as `hk.Conv2D`); flatten (8·8·64) → Linear(width) → ReLU =
    feature → Linear(num_classes).
    """

    def forward(images):
        h = images.astype(jnp.float32) / 127.5 - 1.0
        for channels, stride in SHAPES_CONVS:
            h = jax.nn.relu(PatchConv2D(channels, 3, stride=stride)(h))
        feature = jax.nn.relu(hk.Linear(width)(hk.Flatten()(h)))
        return feature, hk.Linear(num_classes)(feature)

    return hk.transform(forward)


def train_shapes_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    width: int = 512,
    steps: int = 600,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    num_classes: int = 48,
) -> tuple[hk.Params, np.ndarray]:
    """Train with Adam on softmax cross-entropy; batches walk epoch permutations.

    Epoch e uses `numpy.random.default_rng([seed, e]).permutation(n)` (first ⌊n/B⌋·B
    indices); parameters from init(PRNGKey(seed)). Returns (params, per-step losses [steps]).
    """
    n = len(images)
    if n < batch_size:
        raise DataError(f"need at least batch_size={batch_size} training images, got {n}")
    net, opt = shapes_cnn(width, num_classes), optax.adam(learning_rate)
    params = xla.run_once(net.init, jax.random.PRNGKey(seed), jnp.zeros((1, 64, 64, 3), jnp.uint8))
    opt_state = opt.init(params)
    per_epoch = n // batch_size
    epochs = -(-steps // per_epoch)
    order = np.concatenate(
        [
            np.random.default_rng([seed, e]).permutation(n)[: per_epoch * batch_size]
            for e in range(epochs)
        ]
    )[: steps * batch_size].reshape(steps, batch_size)

    def loss_fn(p, x, y):
        _, logits = net.apply(p, None, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(p, s, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    losses = []
    meter = Progress("shapes encoder training", len(order), "steps")
    for idx in order:
        params, opt_state, loss = step(params, opt_state, images[idx], labels[idx])
        losses.append(loss)
        meter.update()
    return params, np.asarray(jnp.stack(losses)) if losses else np.zeros(0, np.float32)


def apply_shapes_cnn(
    params: hk.Params, images: np.ndarray, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """Features [N, width] float32 and predicted classes [N] int64, in batches (jitted)."""
    width = params["linear"]["w"].shape[1]
    net = shapes_cnn(width, params["linear_1"]["w"].shape[1])
    fwd = jax.jit(lambda p, x: net.apply(p, None, x))
    feats, preds = [], []
    meter = Progress("shapes encoding", len(images), "images")
    for a in range(0, len(images), batch_size):
        x = images[a : a + batch_size]
        pad = batch_size - len(x)
        xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        f, logits = fwd(params, xp)
        feats.append(np.asarray(f)[: len(x)])
        preds.append(np.asarray(jnp.argmax(logits, -1))[: len(x)])
        meter.update(len(x))
    if not feats:
        return np.zeros((0, width), np.float32), np.zeros(0, np.int64)
    return np.concatenate(feats).astype(np.float32), np.concatenate(preds).astype(np.int64)


def params_to_arrays(params: Mapping) -> dict[str, np.ndarray]:
    """Flatten {module: {name: array}} → {"module::name": array} (for .npz files)."""
    return {f"{m}::{n}": np.asarray(v) for m, n, v in _flat_leaves(params)}


def arrays_to_params(arrays: Mapping[str, np.ndarray]) -> dict:
    """Inverse of `params_to_arrays`."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        module, name = key.split("::")
        out.setdefault(module, {})[name] = np.asarray(value)
    return out
