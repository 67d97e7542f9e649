"""Atomic file writes (a file appears under its name complete, or not at all) and folder
locks (one process at a time writes into a run directory)."""
import contextlib
import fcntl
import hashlib
import json
import os
import socket


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside ``path``; rename it to ``path`` if the block succeeds,
    delete it otherwise."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    """Write ``text`` to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_json(path):
    """The JSON object in ``path``; ValueError naming the file when it is not one."""
    with open(path) as f:
        try:
            obj = json.load(f)
        except ValueError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, found a {type(obj).__name__}")
    return obj


LOCK = ".lock"


class FolderLockedError(OSError):
    """Another process holds the lock of a folder."""


@contextlib.contextmanager
def lock_dir(path, name=LOCK):
    """Hold an exclusive lock on folder ``path`` (made if absent) for the block.

    The lock is an OS lock (``flock``) on ``path/name``, so the kernel drops it when the
    process ends, however it ends: a killed process leaves no stale lock. The file names
    the holder (process id and host). When another process holds the lock this raises
    FolderLockedError at once, naming the holder, and changes nothing in the folder.
    """
    os.makedirs(path, exist_ok=True)
    lock_path = os.path.join(path, name)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 256).decode(errors="replace").split()
        os.close(fd)
        pid, host = (holder + ["?", "?"])[:2]
        raise FolderLockedError(f"{path} is in use by process {pid} on {host} (it holds "
                                f"{lock_path}); wait for it to end or choose another "
                                "folder") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        yield lock_path
    finally:
        os.close(fd)


def file_sha256(path):
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
