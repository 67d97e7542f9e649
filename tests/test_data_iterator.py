"""CifarIter: the papers' augmentation, determinism, epochs, last batch, parts, prefetching."""
import gc
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import data
import data.iterator
from common.mx import mx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cifar(generated_cifar10):
    """100 generated CIFAR-10 images and labels, with their mean and std."""
    images, labels = data.load_cifar(generated_cifar10)
    images, labels = images[:100], labels[:100]
    return (images, labels) + data.cifar_mean_std(images)


def make_iter(cifar, batch_size=16, augment=True, **kwargs):
    images, labels, mean, std = cifar
    return data.CifarIter(images, labels, batch_size, augment, mean, std, **kwargs)


def epoch_arrays(it):
    batches = list(it)
    return (np.concatenate([b.data[0].asnumpy() for b in batches]),
            np.concatenate([b.label[0].asnumpy() for b in batches]),
            np.concatenate([b.index for b in batches]), batches)


def normalised(cifar, index):
    images, _, mean, std = cifar
    return (images[index] - mean[:, None, None]) / std[:, None, None]


def test_pad_crop_flip_matches_a_per_image_reference():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(20, 3, 8, 6)).astype(np.float32)
    offsets = rng.integers(0, 9, size=(20, 2))
    flips = rng.random(20) < 0.5
    out = data.pad_crop_flip(images, offsets, flips)
    for img, (r, c), flip, got in zip(images, offsets, flips, out):
        want = np.pad(img, ((0, 0), (4, 4), (4, 4)))[:, r:r + 8, c:c + 6]
        np.testing.assert_array_equal(got, want[:, :, ::-1] if flip else want)


def test_evaluation_batches_are_normalised_images_in_order(cifar):
    it = make_iter(cifar, augment=False, last_batch="pad")
    assert it.provide_data[0].shape == (16, 3, 32, 32) and it.provide_data[0].name == "data"
    assert it.provide_label[0].shape == (16,) and it.provide_label[0].name == "softmax_label"
    x, y, index, batches = epoch_arrays(it)
    assert len(batches) == len(it) == 7 and [b.pad for b in batches] == [0] * 6 + [12]
    np.testing.assert_array_equal(index, np.resize(np.arange(100), 112))
    np.testing.assert_allclose(x, normalised(cifar, index), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, cifar[1][index])
    assert abs(x[:100].mean()) < 0.05 and abs(x[:100].std() - 1) < 0.05


def test_training_batches_are_padded_crops_and_flips(cifar):
    it = make_iter(cifar, last_batch="discard")
    plan = it.epoch_plan(0)
    x, _, index, _ = epoch_arrays(it)
    assert len(x) == 96 and len(set(index)) == 96
    offsets, flips = plan.offsets[:96], plan.flips[:96]
    want = data.pad_crop_flip(normalised(cifar, index).astype(np.float32), offsets, flips)
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-5)
    top = x[offsets[:, 0] == 0][:, :, :4]   # crops at row 0 start with 4 rows of padding
    assert top.size and not top.any()
    assert 0.3 < flips.mean() < 0.7 and set(offsets.ravel()) == set(range(9))
    assert not np.array_equal(index, np.sort(index))


def test_same_seed_same_batches_different_seed_or_epoch_differs(cifar):
    a, b, c = (epoch_arrays(make_iter(cifar, seed=s)) for s in (3, 3, 4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])
    assert not np.array_equal(a[2], c[2])
    it = make_iter(cifar, seed=3)
    list(it)
    it.reset()
    assert it.epoch == 1 and not np.array_equal(epoch_arrays(it)[2], a[2])


def test_set_epoch_resumes_exactly(cifar):
    uninterrupted = make_iter(cifar, seed=5)
    epochs = []
    for _ in range(3):        # the Module.fit pattern: iterate, then reset
        epochs.append(epoch_arrays(uninterrupted)[0])
        uninterrupted.reset()
    resumed = make_iter(cifar, seed=5)
    resumed.set_epoch(2)
    resumed.reset()           # reset before the first read only rewinds
    np.testing.assert_array_equal(epoch_arrays(resumed)[0], epochs[2])
    looped = make_iter(cifar, seed=5)
    for e in range(2):        # the reset-then-iterate pattern
        looped.reset()
        np.testing.assert_array_equal(epoch_arrays(looped)[0], epochs[e])


@pytest.mark.parametrize("last_batch", ["pad", "discard"])
def test_parts_are_disjoint_and_equally_long(cifar, last_batch):
    parts = [make_iter(cifar, batch_size=8, num_parts=3, part_index=p, seed=2,
                       last_batch=last_batch) for p in range(3)]
    assert len({len(p) for p in parts}) == 1
    lengths = {len(list(p)) for p in parts}
    assert lengths == {len(parts[0])}
    for p in parts:
        p.set_epoch(1)
    real_indices = []
    for p in parts:
        batches = list(p)
        index = np.concatenate([b.index[:len(b.index) - b.pad] for b in batches])
        assert len(set(index)) == len(index)
        real_indices.append(index)
    everything = np.concatenate(real_indices)
    assert len(set(everything)) == len(everything)
    if last_batch == "pad":
        assert sorted(everything) == list(range(100))
    else:
        assert len(everything) == 3 * len(parts[0]) * 8


def test_parts_see_the_same_augmentation_as_one_worker(cifar):
    whole = make_iter(cifar, batch_size=10, seed=7).epoch_plan(4)
    half = make_iter(cifar, batch_size=10, seed=7, num_parts=2, part_index=1).epoch_plan(4)
    np.testing.assert_array_equal(half.index, whole.index[1::2])
    np.testing.assert_array_equal(half.offsets, whole.offsets[1::2])


def test_float16_output(cifar):
    it16 = make_iter(cifar, dtype="float16", augment=False)
    it32 = make_iter(cifar, augment=False)
    assert it16.provide_data[0].dtype == np.float16
    x16 = it16.next().data[0]
    assert x16.dtype == np.float16
    np.testing.assert_allclose(x16.asnumpy(), it32.next().data[0].asnumpy(), atol=5e-3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(last_batch="roll_over"), "last_batch must be one of"),
    (dict(num_parts=2, part_index=2), "part_index must be in"),
    (dict(dtype="int8"), "dtype must be one of"),
    (dict(batch_size=200, last_batch="discard"), "do not fill one batch"),
])
def test_bad_arguments(cifar, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_iter(cifar, **kwargs)


def test_worker_exception_is_raised_in_next(cifar, monkeypatch):
    def broken(*args):
        raise RuntimeError("augmentation failed")
    monkeypatch.setattr(data.iterator, "pad_crop_flip", broken)
    it = make_iter(cifar)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="augmentation failed"):
            it.next()
    it.close()


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "cifar-prefetch" and t.is_alive()]


def test_prefetch_thread_stops(cifar):
    before = prefetch_threads()  # iterators of earlier tests may still be ending theirs
    it = make_iter(cifar)
    it.next()
    thread = it._prefetcher._thread
    assert thread in prefetch_threads() and thread not in before
    it.close()
    assert not thread.is_alive()
    dropped = make_iter(cifar)
    dropped.next()
    thread = dropped._prefetcher._thread
    del dropped
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_interpreter_exits_with_an_unfinished_epoch(cifar):
    script = ("import numpy as np, data\n"
              "x = np.zeros((4096, 3, 32, 32), np.uint8); y = np.zeros(4096, int)\n"
              "it = data.CifarIter(x, y, 64, True, [0] * 3, [1] * 3)\n"
              "it.next(); print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_trains_a_module_through_fit_and_score(cifar):
    it = make_iter(cifar, batch_size=20, last_batch="discard")
    val = make_iter(cifar, batch_size=32, augment=False)
    net = mx.sym.Convolution(mx.sym.var("data"), kernel=(3, 3), num_filter=4, name="conv")
    net = mx.sym.Pooling(mx.sym.relu(net), global_pool=True, pool_type="avg", kernel=(1, 1))
    net = mx.sym.FullyConnected(mx.sym.flatten(net), num_hidden=10, name="fc")
    mod = mx.mod.Module(mx.sym.SoftmaxOutput(net, name="softmax"), context=mx.cpu())
    mod.fit(it, num_epoch=2, optimizer="sgd", optimizer_params={"learning_rate": 0.1})
    assert it.epoch == 2       # fit resets after each epoch: epochs 0 and 1 were used
    (name, acc), = mod.score(val, "acc")
    assert name == "accuracy" and 0.0 <= acc <= 1.0
    assert all(np.isfinite(p.asnumpy()).all() for p in mod.get_params()[0].values())
