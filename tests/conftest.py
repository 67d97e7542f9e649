"""Shared test fixtures."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CIFAR = os.path.join(ROOT, "..", "shared", "data", "cifar-10-batches-py")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def shared_cifar10():
    """The folder of real official-format CIFAR-10 files beside the checkout, or skip."""
    if not os.path.isfile(os.path.join(SHARED_CIFAR, "data_batch_1")):
        pytest.skip(f"real CIFAR-10 sample not found at {os.path.normpath(SHARED_CIFAR)}")
    return SHARED_CIFAR
