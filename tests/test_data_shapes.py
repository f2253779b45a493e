"""The embedded `shapes` generator (docs/data.md#shapes): determinism, geometry, fields."""

import numpy as np
import pytest

from noisy_emcom.data import shapes


@pytest.fixture(scope="module")
def sample():
    return shapes.generate(120, "train", seed=0)


def test_byte_identical_for_a_seed(sample):
    again = shapes.generate(120, "train", seed=0, chunk=7)
    for k in sample:
        assert sample[k].tobytes() == again[k].tobytes(), k
    other = shapes.generate(5, "train", seed=1)
    assert not np.array_equal(other["image"], sample["image"][:5])


def test_start_offset_and_split_streams():
    full = shapes.generate(10, "valid", seed=3)
    tail = shapes.generate(4, "valid", seed=3, start=6)
    assert np.array_equal(full["image"][6:], tail["image"])
    assert np.array_equal(tail["image_id"], [6, 7, 8, 9])
    assert not np.array_equal(full["image"], shapes.generate(10, "test", seed=3)["image"])


def test_rng_draw_order():
    rng = np.random.default_rng([0, 2, 5])
    shape, colour, size, bg = (int(rng.integers(0, k)) for k in (6, 8, 3, 4))
    r = shapes.RADII[size]
    cx, cy = rng.uniform(r + 2, 62 - r), rng.uniform(r + 2, 62 - r)
    theta = rng.uniform(0, 2 * np.pi)
    noise = rng.standard_normal((64, 64, 3)) * 6
    d = shapes.generate(1, "test", seed=0, start=5)
    assert d["label"][0] == 8 * shape + colour
    assert (d["factor_size"][0], d["factor_background"][0]) == (size, bg)
    assert np.isclose(d["factor_x"][0], cx) and np.isclose(d["factor_y"][0], cy)
    img = shapes.render(
        np.array([shape]),
        np.array([colour]),
        np.array([bg]),
        np.array([size]),
        np.array([cx]),
        np.array([cy]),
        np.array([theta]),
        noise[None],
    )
    assert np.array_equal(img[0], d["image"][0])


def test_shapes_and_dtypes(sample):
    assert sample["image"].shape == (120, 64, 64, 3) and sample["image"].dtype == np.uint8
    assert sample["attributes"].shape == (120, 40) and sample["attributes"].dtype == bool
    assert sample["landmarks"].shape == (120, 10) and sample["landmarks"].dtype == np.int64
    assert len(shapes.ATTRIBUTE_NAMES) == 40 and len(set(shapes.ATTRIBUTE_NAMES)) == 40
    assert sample["label"].min() >= 0 and sample["label"].max() < 48


def test_attributes_agree_with_factors(sample):
    a = dict(zip(shapes.ATTRIBUTE_NAMES, sample["attributes"].T, strict=True))
    s, c = sample["factor_shape"], sample["factor_colour"]
    for k, n in enumerate(shapes.SHAPE_NAMES):
        assert np.array_equal(a[f"shape_{n}"], s == k)
    for k, n in enumerate(shapes.COLOUR_NAMES):
        assert np.array_equal(a[f"color_{n}"], c == k)
    onehots = sample["attributes"][:, :21].sum(1)
    assert np.all(onehots == 4)
    assert np.array_equal(a["left_half"], sample["factor_x"] < 32)
    assert np.array_equal(a["right_angles"], np.isin(s, [1, 5]))
    assert not (a["upright"] & a["tilted_ccw"]).any()
    assert not a["upright"][s == 0].any() and not a["tilted_ccw"][s == 0].any()
    assert np.array_equal(a["light_color"], np.isin(c, [3, 5, 6, 7]))
    big = shapes.RADII[sample["factor_size"]] ** 2 * shapes.AREAS[s] > 250
    assert np.array_equal(a["large_area"], big)


def test_landmarks_inside_and_match_centre(sample):
    lm = sample["landmarks"]
    assert lm.min() >= 0 and lm.max() <= 63
    assert np.array_equal(lm[:, 0], np.rint(sample["factor_x"].astype(float)))
    assert np.all(lm[:, 2] <= lm[:, 0]) and np.all(lm[:, 0] <= lm[:, 4])
    assert np.all(lm[:, 3] <= lm[:, 1]) and np.all(lm[:, 1] <= lm[:, 7])


def test_object_pixels_have_object_colour(sample):
    # Pixels far from the object are background + noise; the centre pixel of a large convex
    # object is its colour + noise (noise σ = 6, so within 30 of the value).
    for i in range(20):
        if sample["factor_size"][i] != 2 or sample["factor_shape"][i] == 4:
            continue
        x, y = int(sample["factor_x"][i]), int(sample["factor_y"][i])
        col = shapes.COLOURS[sample["factor_colour"][i]]
        assert np.all(np.abs(sample["image"][i, y, x] - col) < 30)
    bg = shapes.BACKGROUNDS[sample["factor_background"]]
    corner_ok = np.abs(sample["image"][:, 0, 0].astype(float) - bg) < 30
    assert corner_ok.all()


def _alpha(shape, cx, cy, r, theta):
    return shapes.coverage(
        np.array([shape]), np.array([cx]), np.array([cy]), np.array([r]), np.array([theta])
    )[0]


def test_circle_coverage_hand_checked():
    a = _alpha(0, 32.0, 32.0, 8.0, 0.0)
    assert abs(a.sum() - np.pi * 64) < 2.0  # area πR² within supersampling error
    assert a[32, 32] == 1.0 and a[31, 31] == 1.0 and a[0, 0] == 0.0
    assert a[32, 40] == 0.0  # column 40 starts at x = 40 = c + R: no sample inside
    # pixel (row 32, col 39) covers x ∈ [39, 40): samples x = 39.125..39.875, y = 32.125..32.875
    ys = 32 + (np.arange(4) + 0.5) / 4
    xs = 39 + (np.arange(4) + 0.5) / 4
    inside = ((xs[None] - 32) ** 2 + (ys[:, None] - 32) ** 2 <= 64).mean()
    assert a[32, 39] == inside


def test_square_and_rotation_hand_checked():
    a = _alpha(1, 32.0, 32.0, 8.0, 0.0)  # half side 8/√2 ≈ 5.657: x ∈ [26.343, 37.657]
    assert np.all(a[27:37, 27:37] == 1.0)
    assert a[30, 26] == 0.75  # samples 26.375, 26.625, 26.875 inside, 26.125 outside
    assert a[30, 37] == 0.75  # samples 37.125, 37.375, 37.625 inside
    assert a[20, 20] == 0.0
    rot = _alpha(1, 32.0, 32.0, 8.0, np.pi / 2)  # 90° is a symmetry of the square
    assert np.array_equal(a, rot)


def test_triangle_points_up():
    a = _alpha(2, 32.0, 32.0, 16.0, 0.0)  # apex at (32, 16), base at y = 32 + 8
    assert a[17, 32] > 0 and a[14, 32] == 0.0
    assert a[39, 20] > 0 and a[41, 32] == 0.0


def test_bounding_box_and_attributes_of_known_cases():
    box = shapes.bounding_boxes(
        np.array([0, 3]),
        np.array([20.0, 40.0]),
        np.array([30.0, 30.0]),
        np.array([8.0, 10.0]),
        np.array([0.0, 0.0]),
    )
    assert np.allclose(box[0], [12, 22, 28, 38])
    assert np.allclose(box[1], [34, 20, 46, 40])  # diamond: |u| ≤ 0.6, |v| ≤ 1
    attrs = shapes.attributes(
        np.array([3]),
        np.array([7]),
        np.array([1]),
        np.array([0]),
        np.array([40.0]),
        np.array([30.0]),
        np.array([0.0]),
    )[0]
    a = dict(zip(shapes.ATTRIBUTE_NAMES, attrs, strict=True))
    assert a["tall"] and a["upright"] and a["high_contrast"] and a["dark_background"]
    assert a["pointy_shape"] and a["convex_shape"] and not a["right_angles"]
    assert not a["left_half"] and a["top_half"]
