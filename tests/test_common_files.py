"""common.files.lock_dir: one process at a time in a folder, no stale lock after a kill."""
import os
import signal
import socket
import subprocess
import sys

import pytest

from common.files import FolderLockedError, lock_dir
from tests.train_support import hold_in_child


def test_second_holder_is_refused_naming_the_first(tmp_path):
    with lock_dir(str(tmp_path)) as lock_path:
        assert open(lock_path).read().split() == [str(os.getpid()), socket.gethostname()]
        before = {p: open(os.path.join(tmp_path, p), "rb").read() for p in os.listdir(tmp_path)}
        with pytest.raises(FolderLockedError) as err:
            with lock_dir(str(tmp_path)):
                pytest.fail("entered a folder locked by another holder")
        message = str(err.value)
        assert f"process {os.getpid()} on {socket.gethostname()}" in message
        assert str(tmp_path) in message and "\n" not in message
        assert {p: open(os.path.join(tmp_path, p), "rb").read()
                for p in os.listdir(tmp_path)} == before


def test_released_at_the_end_of_the_block_and_on_errors(tmp_path):
    with lock_dir(str(tmp_path)):
        pass
    with pytest.raises(RuntimeError):
        with lock_dir(str(tmp_path)):
            raise RuntimeError("boom")
    with lock_dir(str(tmp_path)):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    child = hold_in_child(tmp_path)
    try:
        with pytest.raises(FolderLockedError, match=f"process {child.pid} on "):
            with lock_dir(str(tmp_path)):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with lock_dir(str(tmp_path)) as lock_path:  # the kernel dropped the dead child's lock
        assert open(lock_path).read().split()[0] == str(os.getpid())


def test_children_do_not_inherit_the_lock(tmp_path):
    with lock_dir(str(tmp_path)):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with lock_dir(str(tmp_path)):  # the child still runs, the lock is free
            pass
    finally:
        child.kill()
        child.wait(timeout=30)


def test_other_lock_names_are_independent(tmp_path):
    with lock_dir(str(tmp_path), ".runner.lock"):
        with lock_dir(str(tmp_path)):
            assert sorted(os.listdir(tmp_path)) == [".lock", ".runner.lock"]
