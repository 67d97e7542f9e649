"""The generated CIFAR folders: the official Python-2 pickle layout, determinism, learnability."""
import os
import pickle
import pickletools

import numpy as np
import pytest

import data
from tests.train_support import run_script


def raw_load(path, encoding="bytes"):
    with open(path, "rb") as f:
        return pickle.load(f, encoding=encoding)


def opcodes(path):
    """The opcode names of a pickle file and the globals it names."""
    with open(path, "rb") as f:
        ops = list(pickletools.genops(f.read()))
    return {op.name for op, _, _ in ops}, {arg for op, arg, _ in ops if op.name == "GLOBAL"}


def test_cifar10_files_in_the_official_layout(generated_cifar10):
    folder = generated_cifar10
    assert os.path.basename(folder) == "cifar-10-batches-py"
    assert sorted(os.listdir(folder)) == ["batches.meta"] + [f"data_batch_{i}"
                                                             for i in range(1, 6)] + ["test_batch"]
    batch = raw_load(os.path.join(folder, "data_batch_2"))
    assert sorted(batch) == [b"batch_label", b"data", b"filenames", b"labels"]
    assert batch[b"batch_label"] == b"training batch 2 of 5"
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (40, 3072)
    assert len(batch[b"labels"]) == len(batch[b"filenames"]) == 40
    assert all(isinstance(v, int) for v in batch[b"labels"])
    assert all(isinstance(n, bytes) and n.endswith(b".png") for n in batch[b"filenames"])
    meta = raw_load(os.path.join(folder, "batches.meta"))
    assert meta[b"label_names"][0] == b"airplane" and len(meta[b"label_names"]) == 10
    assert meta[b"num_vis"] == 3072
    # latin1 decoding gives str keys, as with the real files
    assert "data" in raw_load(os.path.join(folder, "test_batch"), encoding="latin1")


def test_pickled_as_python2_protocol2(generated_cifar10):
    names, globals_ = opcodes(os.path.join(generated_cifar10, "data_batch_1"))
    with open(os.path.join(generated_cifar10, "data_batch_1"), "rb") as f:
        assert f.read(2) == b"\x80\x02"
    assert {"SHORT_BINSTRING", "BINSTRING"} <= names  # Python-2 str: keys and the pixels
    assert not names & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


def test_loads_through_the_project_loader(generated_cifar10, generated_cifar100):
    images, labels = data.load_cifar(generated_cifar10)
    test_images, test_labels = data.load_cifar(generated_cifar10, train=False)
    assert images.shape == (200, 3, 32, 32) and test_images.shape == (60, 3, 32, 32)
    assert np.bincount(labels).tolist() == [20] * 10
    assert set(test_labels) == set(range(10))
    assert data.cifar_class_names(generated_cifar10)[9] == "truck"

    fine_images, fine = data.load_cifar(generated_cifar100)
    _, coarse = data.load_cifar(generated_cifar100, label_mode="coarse")
    assert fine_images.shape == (300, 3, 32, 32) and set(fine) == set(range(100))
    np.testing.assert_array_equal(coarse, fine // 5)
    assert len(data.cifar_class_names(generated_cifar100)) == 100
    assert len(data.cifar_class_names(generated_cifar100, "coarse")) == 20
    raw = raw_load(os.path.join(generated_cifar100, "train"))
    assert sorted(raw) == [b"batch_label", b"coarse_labels", b"data", b"filenames",
                           b"fine_labels"]
    assert sorted(raw_load(os.path.join(generated_cifar100, "meta"))) == [
        b"coarse_label_names", b"fine_label_names"]


def test_same_seed_same_bytes(tmp_path):
    first = data.make_synthetic_cifar(str(tmp_path / "a"), train_per_batch=12, test_size=10)
    again = data.make_synthetic_cifar(str(tmp_path / "b"), train_per_batch=12, test_size=10)
    other = data.make_synthetic_cifar(str(tmp_path / "c"), train_per_batch=12, test_size=10,
                                      seed=1)
    for name in os.listdir(first):
        with open(os.path.join(first, name), "rb") as f, \
                open(os.path.join(again, name), "rb") as g:
            assert f.read() == g.read(), name
    a, _ = data.load_cifar(first)
    c, _ = data.load_cifar(other)
    assert not np.array_equal(a, c)
    # training and test images are different draws
    test, _ = data.load_cifar(first, train=False)
    assert not {img.tobytes() for img in test} & {img.tobytes() for img in a}


def test_classes_are_learnable(generated_cifar10):
    """A nearest-class-mean rule on colour and stripe features beats chance by far, and no
    single image statistic gives the class away alone (the noise is real)."""
    images, labels = data.load_cifar(generated_cifar10)
    test, test_labels = data.load_cifar(generated_cifar10, train=False)

    def features(x):
        x = x.astype(np.float64)
        grad_x = np.abs(np.diff(x, axis=3)).mean(axis=(1, 2, 3))
        grad_y = np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3))
        return np.column_stack([x.mean(axis=(2, 3)) / 255, grad_x / 50, grad_y / 50])

    means = np.stack([features(images[labels == k]).mean(axis=0) for k in range(10)])
    distance = ((features(test)[:, None] - means[None]) ** 2).sum(axis=2)
    accuracy = (distance.argmin(axis=1) == test_labels).mean()
    assert accuracy > 0.8
    assert images.std(axis=0).mean() > 10  # images of a class vary


def test_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        data.make_synthetic_cifar(str(tmp_path), train_per_batch=0)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.make_synthetic_cifar(str(tmp_path), "mnist")


def test_command_line(tmp_path):
    out = run_script(["-m", "data", "synthetic", str(tmp_path), "--dataset", "cifar100",
                      "--train-per-batch", "100", "--test-size", "20"])
    assert out.returncode == 0, out.stderr
    folder = out.stdout.strip()
    assert folder == str(tmp_path / "cifar-100-python")
    images, _ = data.load_cifar(folder, train=False)
    assert images.shape == (20, 3, 32, 32)


def test_layout_matches_the_real_files(generated_cifar10, shared_cifar10):
    """Real-file layer: the generated pickles use the real files' opcodes and globals (the
    one extra, NEWTRUE, is NumPy 1.x writing the dtype's flags as bools, not ints) and the
    meta file the same keys and class names."""
    mine, mine_globals = opcodes(os.path.join(generated_cifar10, "data_batch_1"))
    real, real_globals = opcodes(os.path.join(shared_cifar10, "data_batch_1"))
    assert mine - real <= {"NEWTRUE"} and mine_globals == real_globals
    meta, real_meta = (raw_load(os.path.join(folder, "batches.meta"))
                       for folder in (generated_cifar10, shared_cifar10))
    assert sorted(meta) == sorted(real_meta)
    assert meta[b"label_names"] == real_meta[b"label_names"]
