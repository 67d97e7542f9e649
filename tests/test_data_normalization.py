"""data.normalize: (pixels - mean) / std per channel, by hand, in both channel layouts, as
float32; and ``import data`` loads no MXNet until an MXNet-backed name is asked for."""
import subprocess
import sys

import numpy as np
import pytest

from data.normalization import normalize
from tests.conftest import ROOT

# one image (C=3, H=1, W=2) and statistics chosen so that the quotients are exact
PIXELS = np.array([[[0, 255]], [[100, 50]], [[10, 20]]], np.uint8)
MEAN, STD = [127.5, 100.0, 10.0], [127.5, 50.0, 5.0]
BY_HAND = [[[(0 - 127.5) / 127.5, (255 - 127.5) / 127.5]],  # -1, 1
           [[(100 - 100) / 50, (50 - 100) / 50]],            # 0, -1
           [[(10 - 10) / 5, (20 - 10) / 5]]]                 # 0, 2


def test_normalize_channels_first_by_hand():
    got = normalize(PIXELS[None], MEAN, STD)  # (N, C, H, W), the default channel_axis=1
    assert got.dtype == np.float32 and got.shape == (1, 3, 1, 2)
    np.testing.assert_allclose(got[0], BY_HAND, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[0], [[[-1, 1]], [[0, -1]], [[0, 2]]], rtol=0, atol=1e-6)


def test_normalize_channels_last_by_hand():
    got = normalize(PIXELS.transpose(1, 2, 0), MEAN, STD, channel_axis=-1)  # (H, W, C)
    assert got.dtype == np.float32 and got.shape == (1, 2, 3)
    np.testing.assert_allclose(got, np.transpose(BY_HAND, (1, 2, 0)), rtol=0, atol=1e-6)


def test_normalize_gives_float32_from_any_input_and_fills_out():
    pixels = PIXELS[None].astype(np.float64)
    assert normalize(pixels, MEAN, STD).dtype == np.float32
    out = np.full((1, 3, 1, 2), np.nan, np.float32)
    assert normalize(PIXELS[None], MEAN, STD, out=out) is out
    np.testing.assert_allclose(out[0], BY_HAND, rtol=0, atol=1e-6)


def test_normalize_equals_the_quotient_within_float32_rounding():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 3, 5, 6), dtype=np.uint8)
    mean, std = np.float32([125.3, 123.0, 113.9]), np.float32([63.0, 62.1, 66.7])
    quotient = (pixels - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(normalize(pixels, mean, std), quotient, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis, mean, message", [
    (1, [1.0, 2.0], r"mean and std need one value for each of the 3 channels \(axis 1 of "
                    r"images of shape \(1, 3, 1, 2\)\), got \[1.0, 2.0\] and"),
    (-1, MEAN, "one value for each of the 2 channels"),
    (4, MEAN, r"images of shape \(1, 3, 1, 2\) have no axis 4"),
])
def test_normalize_refuses_statistics_that_do_not_fit(axis, mean, message):
    with pytest.raises(ValueError, match=message):
        normalize(PIXELS[None], mean, STD[:len(mean)], channel_axis=axis)


def test_import_data_loads_no_mxnet_until_an_mxnet_name_is_used():
    code = ("import sys\n"
            "import data\n"
            "from data import normalize, load_cifar\n"
            "assert 'mxnet' not in sys.modules\n"
            "data.CifarIter\n"
            "assert 'mxnet' in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_mxnet_names_of_data_still_resolve():
    import data.imagenet
    import data.iterator
    import data.loaders
    assert data.CifarIter is data.iterator.CifarIter
    assert data.get_cifar_iters is data.loaders.get_cifar_iters
    assert data.pack_imagenet is data.imagenet.pack_imagenet
    assert set(data.MXNET_NAMES) <= set(data.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        data.nonsense
