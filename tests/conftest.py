"""Shared test fixtures."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The real files beside the checkout; RESNET_SHARED_DATA=/nonexistent runs the suite as a
# fresh clone would (every test on generated data, only the real-image layer skipped).
SHARED_DATA = os.environ.get("RESNET_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
SHARED_CIFAR = os.path.join(SHARED_DATA, "cifar-10-batches-py")
# Real ImageNet photographs are not in ../shared: the tests that read them run where this
# names a folder of them (e.g. the imagenet-sample-images repository's files).
IMAGENET_PHOTOS = os.environ.get("RESNET_IMAGENET_PHOTOS")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def shared_cifar10():
    """The folder of real official-format CIFAR-10 files beside the checkout, or skip."""
    if not os.path.isfile(os.path.join(SHARED_CIFAR, "data_batch_1")):
        pytest.skip(f"real CIFAR-10 sample not found at {os.path.normpath(SHARED_CIFAR)}")
    return SHARED_CIFAR


@pytest.fixture
def imagenet_photos():
    """The folder of real ImageNet photographs that RESNET_IMAGENET_PHOTOS names, or skip."""
    if not IMAGENET_PHOTOS or not os.path.isdir(IMAGENET_PHOTOS):
        pytest.skip("no real ImageNet photographs: set RESNET_IMAGENET_PHOTOS to a folder "
                    "of them (see ../shared/data/README.md)")
    return IMAGENET_PHOTOS


@pytest.fixture(scope="session")
def generated_cifar10(tmp_path_factory):
    """A generated CIFAR-10 folder (official layout): 5 x 40 training and 60 test images.

    Shared by the whole session: tests must not change it (copy it first)."""
    from data.synthetic import make_synthetic_cifar
    return make_synthetic_cifar(str(tmp_path_factory.mktemp("cifar10")), "cifar10",
                                train_per_batch=40, test_size=60)


@pytest.fixture(scope="session")
def generated_cifar100(tmp_path_factory):
    """A generated CIFAR-100 folder (official layout): 300 training and 100 test images."""
    from data.synthetic import make_synthetic_cifar
    return make_synthetic_cifar(str(tmp_path_factory.mktemp("cifar100")), "cifar100",
                                train_per_batch=300, test_size=100)


@pytest.fixture(scope="session")
def run3(generated_cifar10, tmp_path_factory):
    """A 3-epoch ResNet-8 run on ``generated_cifar10`` (its directory, its returned
    records), for the training, export and classification tests.

    Shared by the whole session: tests must not change it (``copy_run`` it first)."""
    import train_cifar
    from tests.train_support import TINY
    out = str(tmp_path_factory.mktemp("run3"))
    records = train_cifar.main(["--data-dir", generated_cifar10, "--output-dir", out,
                                "--num-epochs", "3", "--disp-batches", "2"] + TINY)
    return out, records
