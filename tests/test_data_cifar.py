"""CIFAR loading: generated and real official files, both pickle key styles, validation, safe
unpickling."""
import os
import pickle
import shutil

import numpy as np
import pytest

import data
from data.sample import write_pickle


@pytest.fixture
def sample(tmp_path):
    """A generated CIFAR-10 folder: 5 x 60 training and 40 test images."""
    return data.make_synthetic_cifar(str(tmp_path), train_per_batch=60, test_size=40)


def incomplete_folder(source, folder):
    """A CIFAR-10 folder holding only ``data_batch_1`` and ``batches.meta`` of ``source``."""
    os.makedirs(folder)
    for name in ("data_batch_1", "batches.meta"):
        shutil.copy(os.path.join(source, name), folder)
    return str(folder)


def trusted_load(path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def write_batch(path, **entries):
    write_pickle(str(path), {k: v for k, v in entries.items()})
    return str(path)


def test_real_official_batch(shared_cifar10):
    path = os.path.join(shared_cifar10, "data_batch_1")
    images, labels = data.load_batch(path)
    raw = trusted_load(path)
    assert images.shape == (1017, 3, 32, 32) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and labels.shape == (1017,)
    np.testing.assert_array_equal(images.reshape(1017, -1), raw[b"data"])
    np.testing.assert_array_equal(labels, raw[b"labels"])
    assert set(np.unique(labels)) == set(range(10))
    # channel-major rows: the red plane of image 0 is its first 1024 bytes
    np.testing.assert_array_equal(images[0, 0].ravel(), raw[b"data"][0, :1024])


def test_real_meta_class_names(shared_cifar10):
    names = data.cifar_class_names(shared_cifar10)
    raw = trusted_load(os.path.join(shared_cifar10, "batches.meta"))
    assert names == [n.decode() for n in raw[b"label_names"]]
    assert len(names) == 10 and all(isinstance(n, str) for n in names)


def test_incomplete_folder_names_the_missing_file(generated_cifar10, tmp_path):
    folder = incomplete_folder(generated_cifar10, tmp_path / "cifar-10-batches-py")
    with pytest.raises(FileNotFoundError, match="data_batch_2: no such file"):
        data.load_cifar(folder)
    images, labels = data.load_cifar(folder, files=["data_batch_1"])
    assert images.shape == (40, 3, 32, 32) and len(labels) == 40


@pytest.mark.parametrize("str_keys", [False, True])
def test_complete_folder_both_key_styles(generated_cifar10, tmp_path, str_keys):
    source = incomplete_folder(generated_cifar10, tmp_path / "source")  # 40 images
    folder = data.make_cifar_sample(source, tmp_path, 10, 8, str_keys=str_keys)
    key = "data" if str_keys else b"data"
    assert key in trusted_load(os.path.join(folder, "data_batch_3"))
    given, given_labels = data.load_batch(os.path.join(source, "data_batch_1"))
    images, labels = data.load_cifar(folder, train=True)
    test_images, test_labels = data.load_cifar(folder, train=False)
    assert images.shape == (50, 3, 32, 32) and test_images.shape == (8, 3, 32, 32)
    rows = np.arange(58) % 40  # in order, repeated when the source has too few
    np.testing.assert_array_equal(images, given[rows[:50]])
    np.testing.assert_array_equal(labels, given_labels[rows[:50]])
    np.testing.assert_array_equal(test_images, given[rows[50:]])
    assert data.cifar_class_names(folder) == data.cifar_class_names(source)


def test_sample_of_the_real_files(shared_cifar10, tmp_path):
    folder = data.make_cifar_sample(shared_cifar10, tmp_path, 60, 40)
    real, real_labels = data.load_batch(os.path.join(shared_cifar10, "data_batch_1"))
    images, labels = data.load_cifar(folder, train=True)
    test_images, _ = data.load_cifar(folder, train=False)
    np.testing.assert_array_equal(images, real[:300])
    np.testing.assert_array_equal(labels, real_labels[:300])
    np.testing.assert_array_equal(test_images, real[300:340])
    assert data.cifar_class_names(folder) == data.cifar_class_names(shared_cifar10)


def cifar100_folder(tmp_path, given, given_labels):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine = (given_labels * 10 + np.arange(len(given_labels)) % 10).astype(int)
    for name, rows in (("train", slice(0, 80)), ("test", slice(80, 100))):
        write_pickle(str(folder / name), {
            b"data": given[rows].reshape(-1, 3072), b"fine_labels": fine[rows].tolist(),
            b"coarse_labels": (fine[rows] // 5).tolist(), b"filenames": [b"x.png"] * 20}, 2)
    write_pickle(str(folder / "meta"), {
        "fine_label_names": [f"fine{i}" for i in range(100)],
        "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return str(folder), fine


def test_cifar100_fine_and_coarse(generated_cifar10, tmp_path):
    given, given_labels = data.load_cifar(generated_cifar10)
    folder, fine = cifar100_folder(tmp_path, given, given_labels)
    images, labels = data.load_cifar(folder)
    np.testing.assert_array_equal(images, given[:80])
    np.testing.assert_array_equal(labels, fine[:80])
    _, coarse = data.load_cifar(folder, train=False, label_mode="coarse")
    np.testing.assert_array_equal(coarse, fine[80:100] // 5)
    assert data.cifar_class_names(folder, "coarse")[19] == "coarse19"
    assert len(data.cifar_class_names(folder)) == 100
    with pytest.raises(ValueError, match="no 'medium' labels"):
        data.load_cifar(folder, label_mode="medium")


def test_cifar10_has_no_coarse_labels(sample):
    with pytest.raises(ValueError, match="CIFAR-10 has no 'coarse' labels"):
        data.load_cifar(sample, label_mode="coarse")


# --- validation: one-line errors naming the file ---------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_9: no such file"):
        data.load_batch(str(tmp_path / "data_batch_9"))
    with pytest.raises(FileNotFoundError, match="not a CIFAR python-version folder"):
        data.load_cifar(str(tmp_path))


@pytest.mark.parametrize("cut", [0, 100, 0.5])
def test_truncated_file(generated_cifar10, tmp_path, cut):
    raw = open(os.path.join(generated_cifar10, "data_batch_1"), "rb").read()
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw[:int(len(raw) * cut) if isinstance(cut, float) else cut])
    with pytest.raises(ValueError, match=f"{path}: corrupt or truncated pickle") as err:
        data.load_batch(str(path))
    assert "\n" not in str(err.value)


def test_corrupt_file(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    with pytest.raises(ValueError, match="data_batch_1: (corrupt|refused)"):
        data.load_batch(str(path))


@pytest.mark.parametrize("entries, message", [
    (dict(data=np.zeros((4, 3072), np.float32), labels=[0] * 4), "dtype float32"),
    (dict(data=np.zeros((4, 1000), np.uint8), labels=[0] * 4), r"shape \(4, 1000\)"),
    (dict(data=[[0] * 3072], labels=[0]), "'data' has a list"),
    (dict(data=np.zeros((4, 3072), np.uint8), labels=[0] * 5), "5 labels for 4 images"),
    (dict(data=np.zeros((4, 3072), np.uint8), labels=[0, 1, 2, 10]), r"outside 0\.\.9"),
    (dict(data=np.zeros((4, 3072), np.uint8), labels=[0, -1, 2, 3]), r"outside 0\.\.9"),
    (dict(data=np.zeros((4, 3072), np.uint8), labels=[0.5] * 4), "integers"),
    (dict(data=np.zeros((4, 3072), np.uint8)), "no 'labels' entry"),
])
def test_bad_contents(tmp_path, entries, message):
    path = write_batch(tmp_path / "data_batch_1", **entries)
    with pytest.raises(ValueError, match=message) as err:
        data.load_batch(path)
    assert str(err.value).startswith(path)


def test_not_a_dict(tmp_path):
    path = str(tmp_path / "data_batch_1")
    write_pickle(path, [1, 2, 3])
    with pytest.raises(ValueError, match="pickled list, expected a dict"):
        data.load_batch(path)


# --- safe unpickling ---------------------------------------------------------------------

class _Payload:
    """Pickles to a call of ``func(*args)``: unpickling with plain pickle runs it."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def crafted_payloads(marker):
    return {"open": _Payload(open, str(marker), "w"),
            "os.system": _Payload(os.system, f"touch '{marker}'"),
            "eval": _Payload(eval, f"open({str(marker)!r}, 'w')")}


@pytest.mark.parametrize("kind", ["open", "os.system", "eval"])
@pytest.mark.parametrize("str_keys, protocol", [(False, 2), (True, 5)])
def test_crafted_pickle_runs_nothing(tmp_path, kind, str_keys, protocol):
    probe = tmp_path / "plain-pickle-ran-it"
    evil = pickle.dumps({"data": crafted_payloads(probe)[kind], "labels": [0]}, protocol)
    pickle.loads(evil)  # the payload is real: plain pickle runs it
    assert probe.exists()

    marker = tmp_path / "marker"
    batch = {"data": crafted_payloads(marker)[kind], "labels": [0]}
    if not str_keys:
        batch = {k.encode(): v for k, v in batch.items()}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol))
    with pytest.raises(ValueError, match=f"{path}: refused to load: global .* is not allowed"):
        data.load_batch(str(path))
    assert not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    path = write_batch(tmp_path / "data_batch_1",
                       data=np.array([None, 1], dtype=object), labels=[0, 0])
    with pytest.raises(ValueError, match="refused to load: object arrays"):
        data.load_batch(path)


# --- statistics and the 45k/5k split ----------------------------------------------------

def test_mean_std_per_channel(generated_cifar10):
    images, _ = data.load_cifar(generated_cifar10)
    mean, std = data.cifar_mean_std(images, chunk=100)
    x = images.astype(np.float64)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == (3,)
    assert 20 < mean.min() and mean.max() < 235  # pixel units 0..255


def test_train_val_split_is_the_papers_45k_5k():
    train, val = data.train_val_split(50000)
    assert len(train) == 45000 and len(val) == 5000
    assert len(np.intersect1d(train, val)) == 0 and len(np.union1d(train, val)) == 50000
    again_train, again_val = data.train_val_split(50000)
    np.testing.assert_array_equal(val, again_val)
    assert val.min() < 1000 and val.max() > 49000  # spread over all five batches


def test_get_cifar_iters_validation_split(sample):
    train, val = data.get_cifar_iters(sample, batch_size=16, validation_split=True,
                                      prefetch=False)
    images, _ = data.load_cifar(sample)
    assert (len(train.labels), len(val.labels)) == (270, 30)
    assert len(train) == 270 // 16 and len(val) == -(-30 // 16)
    train_idx, val_idx = data.train_val_split(300)
    np.testing.assert_array_equal(val.images, images[val_idx])
    mean, std = data.cifar_mean_std(images[train_idx])
    np.testing.assert_array_equal(train.mean, mean)
    np.testing.assert_array_equal(val.std, std)
    assert train.augment and train.shuffle and not val.augment and not val.shuffle


def test_get_cifar_iters_test_set_and_folder_lookup(sample):
    root = os.path.dirname(sample)
    _, val = data.get_cifar_iters(root, batch_size=16, prefetch=False)
    test_images, _ = data.load_cifar(sample, train=False)
    np.testing.assert_array_equal(val.images, test_images)
    _, val = data.get_cifar_iters(root, download=True, prefetch=False)  # present: no fetch
    assert len(val.labels) == 40
    with pytest.raises(FileNotFoundError, match="no CIFAR-100 data in .*--download"):
        data.get_cifar_iters(root, dataset="cifar100")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.get_cifar_iters(root, dataset="mnist")


def test_get_cifar_iters_subset_of_training_images(sample):
    full, _ = data.get_cifar_iters(sample, batch_size=16, prefetch=False)
    train, val = data.get_cifar_iters(sample, batch_size=16, num_examples=50, prefetch=False,
                                      seed=3)
    again, _ = data.get_cifar_iters(sample, batch_size=16, num_examples=50, prefetch=False)
    assert len(train.labels) == 50 and len(val.labels) == 40
    np.testing.assert_array_equal(train.images, again.images)  # same subset for any seed
    rows = {full.images[i].tobytes() for i in range(len(full.labels))}
    assert all(img.tobytes() in rows for img in train.images)
    np.testing.assert_array_equal(train.mean, data.cifar_mean_std(train.images)[0])
    with pytest.raises(ValueError, match=r"num_examples must be in 1\.\.300"):
        data.get_cifar_iters(sample, num_examples=301, prefetch=False)
