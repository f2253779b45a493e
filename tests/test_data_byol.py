"""BYOL ResNet-50: checkpoint format, name/shape checks, preprocessing, extraction."""

import collections
import pickle
import sys
import types

import numpy as np
import pytest
from PIL import Image

from noisy_emcom import encoders
from noisy_emcom.data import raw
from noisy_emcom.data.errors import DataError


def _write_byol_pickle(path, params, state, suffix_stem=True):
    """A BYOL-format pickle: {experiment_state: ByolState(...), step, rng}, whose class lives
    in a module that is gone at load time (so the loader must stub it)."""
    mod = types.ModuleType("byol_fake_helpers")
    state_cls = collections.namedtuple("ByolState", encoders.EXPERIMENT_STATE_FIELDS)
    state_cls.__module__ = mod.__name__
    mod.ByolState = state_cls
    sys.modules[mod.__name__] = mod
    try:

        def rename(tree):
            out = {}
            for k, v in tree.items():
                if suffix_stem:
                    k = k.replace("/~/initial_conv", "/~/initial_conv_1").replace(
                        "/~/initial_batchnorm", "/~/initial_batchnorm_1"
                    )
                out[k] = dict(v)
            return out

        online = rename(params)
        online["projector/~/linear"] = {"w": np.zeros((2048, 4), np.float32)}
        online["classifier"] = {"w": np.zeros((2048, 3), np.float32)}
        online_state = rename(state)
        for k in list(online_state):
            online_state[k]["hidden"] = np.zeros_like(online_state[k]["average"])
            online_state[k]["counter"] = np.zeros((), np.int32)
        es = state_cls(online, {}, online_state, {}, ())
        with open(path, "wb") as f:
            pickle.dump(
                {"experiment_state": es, "step": 5, "rng": np.zeros(2, np.uint32)}, f, protocol=2
            )
    finally:
        del sys.modules[mod.__name__]


@pytest.fixture(scope="module")
def random_resnet():
    return encoders.init_resnet50(seed=1)


@pytest.mark.slow
def test_checkpoint_round_trip(tmp_path, random_resnet):
    params, state = random_resnet
    path = tmp_path / "pretrain_res50x1.pkl"
    _write_byol_pickle(path, params, state)
    got_p, got_s = encoders.load_byol_resnet50(path)
    assert set(got_p) == set(params)
    assert "res_net50/~/initial_conv" in got_p
    for m in params:
        for n in params[m]:
            assert np.array_equal(got_p[m][n], params[m][n]), (m, n)
    for m in state:
        assert np.array_equal(got_s[m]["average"], state[m]["average"])


@pytest.mark.slow
def test_checkpoint_shape_mismatch_is_named(tmp_path, random_resnet):
    params, state = random_resnet
    bad = {k: dict(v) for k, v in params.items()}
    key = "res_net50/~/block_group_1/~/block_0/~/conv_1"
    bad[key]["w"] = np.zeros((3, 3, 128, 64), np.float32)
    path = tmp_path / "bad.pkl"
    _write_byol_pickle(path, bad, state, suffix_stem=False)
    with pytest.raises(DataError, match=r"block_group_1/~/block_0/~/conv_1/w has shape"):
        encoders.load_byol_resnet50(path)


@pytest.mark.slow
def test_checkpoint_missing_or_unknown_names(tmp_path, random_resnet):
    params, state = random_resnet
    missing = {k: v for k, v in params.items() if "block_group_3/~/block_2/~/conv_2" not in k}
    path = tmp_path / "missing.pkl"
    _write_byol_pickle(path, missing, state)
    with pytest.raises(DataError, match=r"missing parameter .*block_group_3/~/block_2/~/conv_2"):
        encoders.load_byol_resnet50(path)
    extra = dict(params)
    extra["res_net50/~/block_group_9/~/block_0/~/conv_0"] = {"w": np.zeros(3, np.float32)}
    path = tmp_path / "extra.pkl"
    _write_byol_pickle(path, extra, state)
    with pytest.raises(DataError, match=r"unexpected parameter .*block_group_9"):
        encoders.load_byol_resnet50(path)


def test_checkpoint_bad_files(tmp_path):
    with pytest.raises(DataError, match="checkpoint file not found"):
        encoders.load_byol_resnet50(tmp_path / "nope.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="junk.pkl: cannot read checkpoint"):
        encoders.load_byol_resnet50(junk)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"params": 1}))
    with pytest.raises(DataError, match="no 'experiment_state'"):
        encoders.load_byol_resnet50(other)


class _RunsCode:
    """Pickles as a call of os.system (and of builtins.exec): what a crafted file would do."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func", ["system", "exec"])
def test_crafted_checkpoint_runs_no_code(tmp_path, func):
    """The BYOL file is a pickle made by others: only numpy and builtin containers are
    resolved, every other global (os.system, exec, ...) becomes an inert stand-in."""
    import builtins
    import os

    marker = tmp_path / "PWNED"
    call = (
        _RunsCode(os.system, f"touch {marker}")
        if func == "system"
        else _RunsCode(builtins.exec, f"open({str(marker)!r}, 'w')")
    )
    crafted = tmp_path / "crafted.pkl"
    crafted.write_bytes(pickle.dumps({"experiment_state": call, "step": 1}))
    with pytest.raises(DataError):
        encoders.load_byol_resnet50(crafted)
    assert not marker.exists()


def test_crop_box_and_preprocess():
    assert raw.centre_crop_box(218, 178) == (32, 12, 155)
    img = np.full((218, 178, 3), 255, np.uint8)
    x = raw.byol_preprocess(img, size=32)
    assert x.shape == (32, 32, 3) and x.dtype == np.float32
    assert np.allclose(x, (1.0 - raw.IMAGENET_MEAN) / raw.IMAGENET_STD, atol=1e-5)
    m = raw.bicubic_matrix(7, 13)
    assert np.allclose(m.sum(1), 1.0)


def test_undecodable_image_is_named(tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8garbage")
    with pytest.raises(DataError, match="broken.jpg: image does not decode"):
        raw.decode_rgb(p)


@pytest.mark.slow
def test_extraction_batches_match_single_images(tmp_path, random_resnet):
    from noisy_emcom.data.extract import extract_features

    params, state = random_resnet
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    f = extract_features(paths, params, state, batch_size=2, image_size=32)
    assert f.shape == (3, 2048) and np.isfinite(f).all() and (f >= 0).all()
    single = extract_features(paths[2:], params, state, batch_size=2, image_size=32)
    assert np.allclose(single[0], f[2], atol=1e-4)
