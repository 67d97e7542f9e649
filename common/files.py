"""Atomic file writes: a file appears under its name complete, or not at all."""
import contextlib
import json
import os


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
