"""Helpers of the training tests: a small CIFAR-10 folder, the scripts' flags, a copy of a
run, subprocesses."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The smallest CIFAR ResNet (one unit a stage) on 200 training images: 6 batches an epoch.
TINY = ["--num-layers", "8", "--batch-size", "32", "--no-plots"]


def small_cifar(shared, root, train_per_batch=40, test_size=60):
    """A complete CIFAR-10 folder under ``root`` made from the real sample's images."""
    from data.sample import make_cifar_sample
    make_cifar_sample(shared, str(root), train_per_batch, test_size)
    return str(root)


def copy_run(run3, tmp_path):
    """A copy of the ``run3`` fixture's run directory under ``tmp_path``, to change."""
    shutil.copytree(run3[0], tmp_path / "run")
    return str(tmp_path / "run")


def run_script(args, timeout=120, **kwargs):
    """Run ``python3 <args>`` from the repository root; returns the CompletedProcess."""
    return subprocess.run([sys.executable] + list(args), cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, **kwargs)


HOLD_LOCK = """
import sys, time
from common.files import lock_dir
with lock_dir(sys.argv[1], sys.argv[2]):
    print("locked", flush=True)
    time.sleep(120)
"""


def hold_in_child(folder, name=".lock"):
    """A child process that takes the lock ``name`` of ``folder`` and sleeps holding it
    (kill it when done)."""
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder), name], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    child.stdout.close()
    return child
