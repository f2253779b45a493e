"""The embedded `shapes` dataset (docs/data.md#shapes): a deterministic, vectorised generator.

Example i of split s uses `numpy.random.default_rng([seed, s, i])` and draws, in order:
shape, colour, size, background (integers), c_x, c_y, θ (uniform), then the 64×64×3 noise
(standard normal × 6). Shapes are rendered with 4×4 supersampled coverage α:
pixel = rint((1 − α)·background + α·colour + noise), clipped to [0, 255].
"""

from __future__ import annotations

import numpy as np

from noisy_emcom.progress import Progress

IMAGE_SIZE = 64
SUPERSAMPLE = 4
NOISE_STD = 6.0
SPLIT_INDEX = {"train": 0, "valid": 1, "test": 2}
NUM_CLASSES = 48

SHAPE_NAMES = ("circle", "square", "triangle", "diamond", "star", "cross")
COLOUR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "white")
SIZE_NAMES = ("small", "medium", "large")
BACKGROUND_NAMES = ("black", "grey", "navy", "brown")

COLOURS = np.array(
    [
        [220, 40, 40],
        [40, 180, 60],
        [50, 80, 220],
        [230, 210, 40],
        [200, 60, 200],
        [40, 200, 210],
        [240, 140, 30],
        [240, 240, 240],
    ],
    dtype=np.float64,
)
BACKGROUNDS = np.array([[15, 15, 15], [80, 80, 80], [20, 30, 80], [80, 50, 20]], dtype=np.float64)
RADII = np.array([8.0, 12.0, 16.0])

# Rotational symmetry period P (radians); circle has none (NaN).
PERIODS = np.deg2rad(np.array([np.nan, 90.0, 120.0, 180.0, 72.0, 90.0]))
# Unit-circumradius area A of each shape (area in px² = R²·A).
AREAS = np.array(
    [np.pi, 2.0, 3.0 * np.sqrt(3.0) / 4.0, 1.2, 10.0 * 0.5 * 0.45 * np.sin(np.deg2rad(36.0)), 1.8]
)

ATTRIBUTE_NAMES = (
    [f"shape_{n}" for n in SHAPE_NAMES]
    + [f"color_{n}" for n in COLOUR_NAMES]
    + [f"size_{n}" for n in SIZE_NAMES]
    + ["bg_black", "bg_grey", "bg_navy", "bg_brown"]
    + [
        "left_half",
        "top_half",
        "left_third",
        "right_third",
        "top_third",
        "bottom_third",
        "near_center",
        "near_border",
        "upright",
        "tilted_ccw",
        "convex_shape",
        "pointy_shape",
        "right_angles",
        "warm_color",
        "light_color",
        "high_contrast",
        "dark_background",
        "large_area",
        "tall",
    ]
)
LANDMARK_NAMES = (
    "center_x",
    "center_y",
    "topleft_x",
    "topleft_y",
    "topright_x",
    "topright_y",
    "bottomleft_x",
    "bottomleft_y",
    "bottomright_x",
    "bottomright_y",
)
FACTOR_NAMES = ("shape", "colour", "size", "background", "x", "y", "rotation")


def _polar(radius: float, degrees: np.ndarray) -> np.ndarray:
    """Points at `radius` and angles (degrees) → [n, 2] (u, v)."""
    a = np.deg2rad(degrees)
    return radius * np.stack([np.cos(a), np.sin(a)], axis=-1)


def _star_vertices() -> np.ndarray:
    """10 star vertices, outer r=1 at 90°+72k, inner r=0.45 at 126°+72k, alternating → [10,2]."""
    k = np.arange(5)
    outer, inner = _polar(1.0, 90.0 + 72.0 * k), _polar(0.45, 126.0 + 72.0 * k)
    return np.stack([outer, inner], axis=1).reshape(10, 2)


_S = 1.0 / np.sqrt(2.0)
# Outline vertices (local units) used for bounding boxes; polygons also use them for inside tests.
VERTICES = {
    1: np.array([[_S, _S], [-_S, _S], [-_S, -_S], [_S, -_S]]),
    2: _polar(1.0, np.array([90.0, 210.0, 330.0])),
    3: np.array([[0.6, 0.0], [0.0, 1.0], [-0.6, 0.0], [0.0, -1.0]]),
    4: _star_vertices(),
    5: np.array(
        [
            [0.3, 0.9],
            [-0.3, 0.9],
            [-0.3, 0.3],
            [-0.9, 0.3],
            [-0.9, -0.3],
            [-0.3, -0.3],
            [-0.3, -0.9],
            [0.3, -0.9],
            [0.3, -0.3],
            [0.9, -0.3],
            [0.9, 0.3],
            [0.3, 0.3],
        ]
    ),
}


def _inside_polygon(u: np.ndarray, v: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd (crossing number) test of points (u, v) [...] against a closed polygon [n,2]."""
    inside = np.zeros(u.shape, dtype=bool)
    n = len(verts)
    for a in range(n):
        (ua, va), (ub, vb) = verts[a], verts[(a + 1) % n]
        if va == vb:
            continue
        crosses = (va > v) != (vb > v)
        u_cross = ua + (v - va) * (ub - ua) / (vb - va)
        inside ^= crosses & (u < u_cross)
    return inside


def inside_shape(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of local unit-circumradius points (u, v) in `shape` (docs/data.md#shapes)."""
    if shape == 0:
        return u * u + v * v <= 1.0
    if shape == 1:
        return (np.abs(u) <= _S) & (np.abs(v) <= _S)
    if shape == 3:
        return np.abs(u) / 0.6 + np.abs(v) <= 1.0
    if shape == 5:
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 0.9)) | ((au <= 0.9) & (av <= 0.3))
    if shape in (2, 4):
        return _inside_polygon(u, v, VERTICES[shape])
    raise ValueError(f"unknown shape id {shape}; expected 0..5")


_WINDOW = 36  # pixels per side of the render window; holds any object (R ≤ 16, 2 px margin)


def coverage(
    shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray, theta: np.ndarray
) -> np.ndarray:
    """Supersampled coverage α ∈ {0, 1/16, …, 1} of every pixel → [N, 64, 64] float64.

    Sample points (j + (k+0.5)/4, i + (l+0.5)/4); local coordinates of a point (x, y):
    dx = (x − c_x)/R, dy = (c_y − y)/R, u = dx cos θ + dy sin θ, v = −dx sin θ + dy cos θ.
    Only a 36×36 window around each object is evaluated (the object lies inside it).
    """
    shape, cx, cy, radius, theta = (
        np.asarray(a).reshape(-1) for a in (shape, cx, cy, radius, theta)
    )
    n, ss = len(shape), SUPERSAMPLE
    x0 = np.clip(np.floor(cx).astype(np.int64) - 18, 0, IMAGE_SIZE - _WINDOW)
    y0 = np.clip(np.floor(cy).astype(np.int64) - 18, 0, IMAGE_SIZE - _WINDOW)
    offs = (np.arange(_WINDOW * ss) + 0.5) / ss  # [W*ss] sample offsets within the window
    xs = x0[:, None] + offs[None, :]  # [N, W*ss]
    ys = y0[:, None] + offs[None, :]
    dx = (xs - cx[:, None]) / radius[:, None]  # [N, X]
    dy = (cy[:, None] - ys) / radius[:, None]  # [N, Y]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u = dx[:, None, :] * cos + dy[:, :, None] * sin  # [N, Y, X]
    v = -dx[:, None, :] * sin + dy[:, :, None] * cos
    inside = np.zeros(u.shape, dtype=bool)
    for s in np.unique(shape):
        sel = shape == s
        inside[sel] = inside_shape(int(s), u[sel], v[sel])
    win = inside.reshape(n, _WINDOW, ss, _WINDOW, ss).mean(axis=(2, 4))
    alpha = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE))
    rows = y0[:, None] + np.arange(_WINDOW)[None, :]  # [N, W]
    cols = x0[:, None] + np.arange(_WINDOW)[None, :]
    alpha[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = win
    return alpha


def draw_factors(seed: int, split: int, index: int) -> tuple[dict, np.ndarray]:
    """Factors and noise [64,64,3] of one example, in the rng draw order of docs/data.md#shapes."""
    rng = np.random.default_rng([seed, split, index])
    shape = int(rng.integers(0, 6))
    colour = int(rng.integers(0, 8))
    size = int(rng.integers(0, 3))
    background = int(rng.integers(0, 4))
    r = RADII[size]
    cx = float(rng.uniform(r + 2.0, 62.0 - r))
    cy = float(rng.uniform(r + 2.0, 62.0 - r))
    theta = float(rng.uniform(0.0, 2.0 * np.pi))
    noise = rng.standard_normal((IMAGE_SIZE, IMAGE_SIZE, 3)) * NOISE_STD
    factors = {
        "shape": shape,
        "colour": colour,
        "size": size,
        "background": background,
        "x": cx,
        "y": cy,
        "rotation": theta,
    }
    return factors, noise


def bounding_boxes(
    shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray, theta: np.ndarray
) -> np.ndarray:
    """Continuous axis-aligned boxes (x_min, y_min, x_max, y_max) → [N, 4].

    Circle: c ± R; polygons: extremes of their transformed vertices
    x = c_x + R(u cos θ − v sin θ), y = c_y − R(u sin θ + v cos θ).
    """
    boxes = np.stack([cx - radius, cy - radius, cx + radius, cy + radius], axis=-1)
    for s, verts in VERTICES.items():
        sel = shape == s
        if not sel.any():
            continue
        c, si = np.cos(theta[sel])[:, None], np.sin(theta[sel])[:, None]
        u, v = verts[None, :, 0], verts[None, :, 1]
        x = cx[sel, None] + radius[sel, None] * (u * c - v * si)
        y = cy[sel, None] - radius[sel, None] * (u * si + v * c)
        boxes[sel] = np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], axis=-1)
    return boxes


def luma(rgb: np.ndarray) -> np.ndarray:
    """Y = 0.299 R + 0.587 G + 0.114 B of [..., 3] colours."""
    return rgb @ np.array([0.299, 0.587, 0.114])


def attributes(shape, colour, size, background, cx, cy, theta) -> np.ndarray:
    """The 40 boolean attributes of docs/data.md#shapes (order `ATTRIBUTE_NAMES`) → [N, 40] bool."""
    radius = RADII[size]
    x_min, y_min, x_max, y_max = bounding_boxes(shape, cx, cy, radius, theta).T
    period = PERIODS[shape]
    circle = shape == 0
    with np.errstate(invalid="ignore"):
        delta = np.mod(theta + period / 2.0, period) - period / 2.0
        upright = ~circle & (np.abs(delta) < period / 8.0)
        tilted = ~circle & (delta >= period / 8.0)
    y_col, y_bg = luma(COLOURS[colour]), luma(BACKGROUNDS[background])
    cols = [
        *(shape == k for k in range(6)),
        *(colour == k for k in range(8)),
        *(size == k for k in range(3)),
        *(background == k for k in range(4)),
        cx < 32.0,
        cy < 32.0,
        cx < 64.0 / 3.0,
        cx >= 128.0 / 3.0,
        cy < 64.0 / 3.0,
        cy >= 128.0 / 3.0,
        (cx - 32.0) ** 2 + (cy - 32.0) ** 2 < 12.0**2,
        np.minimum.reduce([x_min, y_min, 64.0 - x_max, 64.0 - y_max]) < 6.0,
        upright,
        tilted,
        np.isin(shape, [0, 1, 2, 3]),
        np.isin(shape, [2, 3, 4]),
        np.isin(shape, [1, 5]),
        np.isin(colour, [0, 3, 4, 6]),
        y_col > 150.0,
        np.abs(y_col - y_bg) > 100.0,
        np.isin(background, [0, 2]),
        radius**2 * AREAS[shape] > 250.0,
        (y_max - y_min) > 1.1 * (x_max - x_min),
    ]
    return np.stack(cols, axis=-1).astype(bool)


def landmarks(shape, size, cx, cy, theta) -> np.ndarray:
    """Centre and bounding-box corners, rounded and clipped to [0, 63] → [N, 10] int64."""
    x_min, y_min, x_max, y_max = bounding_boxes(shape, cx, cy, RADII[size], theta).T
    pts = np.stack([cx, cy, x_min, y_min, x_max, y_min, x_min, y_max, x_max, y_max], axis=-1)
    return np.clip(np.rint(pts), 0, IMAGE_SIZE - 1).astype(np.int64)


def render(shape, colour, background, size, cx, cy, theta, noise) -> np.ndarray:
    """Images rint((1−α)·bg + α·colour + noise) clipped to uint8 → [N, 64, 64, 3]."""
    alpha = coverage(shape, cx, cy, RADII[size], theta)[..., None]
    col = COLOURS[colour][:, None, None, :]
    bg = BACKGROUNDS[background][:, None, None, :]
    pixels = (1.0 - alpha) * bg + alpha * col + noise
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def generate(
    num: int, split: str | int, seed: int = 0, start: int = 0, chunk: int = 256
) -> dict[str, np.ndarray]:
    """Examples start..start+num−1 of a split → dict of arrays.

    Keys: `image` [N,64,64,3] uint8, `label` [N] int64 = 8·shape + colour, `image_id` [N] int64,
    `attributes` [N,40] bool, `landmarks` [N,10] int64, `factor_<name>` [N] (int64 for shape,
    colour, size, background; float32 for x, y, rotation).
    """
    s = SPLIT_INDEX[split] if isinstance(split, str) else int(split)
    if num < 0:
        raise ValueError(f"number of examples must be >= 0, got {num}")
    ids = np.arange(start, start + num, dtype=np.int64)
    f = {k: np.zeros(num) for k in FACTOR_NAMES}
    images = np.empty((num, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    meter = Progress(f"shapes {split} rendering", num, "images")
    for a in range(0, num, chunk):
        b = slice(a, min(a + chunk, num))
        draws = [draw_factors(seed, s, int(i)) for i in ids[b]]
        for k in FACTOR_NAMES:
            f[k][b] = [d[0][k] for d in draws]
        noise = np.stack([d[1] for d in draws]) if draws else np.zeros((0, 64, 64, 3))
        ib = {k: f[k][b].astype(np.int64) for k in ("shape", "colour", "size", "background")}
        images[b] = render(
            ib["shape"],
            ib["colour"],
            ib["background"],
            ib["size"],
            f["x"][b],
            f["y"][b],
            f["rotation"][b],
            noise,
        )
        meter.update(b.stop - b.start)
    ints = {k: f[k].astype(np.int64) for k in ("shape", "colour", "size", "background")}
    out = {
        "image": images,
        "label": 8 * ints["shape"] + ints["colour"],
        "image_id": ids,
        "attributes": attributes(
            ints["shape"],
            ints["colour"],
            ints["size"],
            ints["background"],
            f["x"],
            f["y"],
            f["rotation"],
        ),
        "landmarks": landmarks(ints["shape"], ints["size"], f["x"], f["y"], f["rotation"]),
    }
    for k in ("shape", "colour", "size", "background"):
        out[f"factor_{k}"] = ints[k]
    for k in ("x", "y", "rotation"):
        out[f"factor_{k}"] = f[k].astype(np.float32)
    return out
