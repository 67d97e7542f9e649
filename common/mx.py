"""The one module that imports MXNet; every other module does ``from common.mx import mx``.

MXNet 1.9.1 still refers to ``np.bool``, which NumPy 1.24 removed, so the alias is
restored before the import. OpenMP gets one thread per physical core unless the user
set ``OMP_NUM_THREADS``: MXNet's own default is much slower on small machines.
"""
import os

import numpy as np


def physical_cores():
    """Number of physical cores this process may run on (hyper-threads counted once)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
        try:
            with open(path) as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


if int(np.__version__.split(".")[0]) >= 2:
    raise ImportError(f"MXNet 1.9.1 does not work with NumPy {np.__version__}: "
                      "pip install 'numpy<2'")
if "bool" not in np.__dict__:
    np.bool = bool

os.environ.setdefault("OMP_NUM_THREADS", str(physical_cores()))

try:
    import mxnet as mx  # noqa: E402
except ImportError as err:
    if getattr(err, "name", None) != "mxnet":
        raise
    raise ImportError("MXNet is not installed: pip install -e '.[cpu]' "
                      "(or '.[gpu]' for CUDA 11.2 GPUs)") from None

__all__ = ["mx", "physical_cores"]
