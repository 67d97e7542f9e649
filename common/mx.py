"""The one module that imports MXNet; every other module does ``from common.mx import mx``.

MXNet 1.9.1 still refers to ``np.bool``, which NumPy 1.24 removed, so the alias is
restored before the import. OpenMP gets one thread per physical core unless the user
set ``OMP_NUM_THREADS``: MXNet's own default is much slower on small machines.

With the ``gpu`` extra, the CUDA 11 libraries that ``mxnet-cu112`` links against come from
PyPI's ``nvidia-*-cu11`` wheels and are loaded here before MXNet, so no CUDA toolkit is
needed (the NVIDIA driver still is). ``check_gpus`` stops, in one line, on GPUs that the
MXNet binaries carry no code for.
"""
import ctypes
import glob
import importlib.util
import os

import numpy as np

from common.cpu import physical_cores

# Files of the nvidia-*-cu11 wheels under site-packages/nvidia/, in dependency order.
CUDA11_LIBS = (
    "cuda_runtime/lib/libcudart.so.11.0", "cublas/lib/libcublasLt.so.11",
    "cublas/lib/libcublas.so.11", "cudnn/lib/libcudnn_ops_infer.so.8",
    "cudnn/lib/libcudnn_ops_train.so.8", "cudnn/lib/libcudnn_cnn_infer.so.8",
    "cudnn/lib/libcudnn_cnn_train.so.8", "cudnn/lib/libcudnn_adv_infer.so.8",
    "cudnn/lib/libcudnn_adv_train.so.8", "cudnn/lib/libcudnn.so.8", "nccl/lib/libnccl.so.2",
    "cuda_nvrtc/lib/libnvrtc-builtins.so.11.*", "cuda_nvrtc/lib/libnvrtc.so.11.2",
    "cufft/lib/libcufft.so.10", "curand/lib/libcurand.so.10",
    "cusolver/lib/libcusolver.so.11", "nvtx/lib/libnvToolsExt.so.1")
# GPU code in mxnet-cu112 1.9.1's libmxnet.so: cubins for these sm_XY and no PTX, so a GPU
# runs it only with the same major version and a minor one at least Y (Hopper, 9.0: none).
MXNET_CUBINS = (50, 60, 70, 80, 86)


def preload_cuda11():
    """Load the nvidia-*-cu11 wheels' libraries, where installed, so that the dynamic
    loader finds them by name when MXNet asks; returns the paths loaded."""
    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations or []) if spec else []
    loaded = []
    for pattern in CUDA11_LIBS:
        for root in roots:
            for path in sorted(glob.glob(os.path.join(root, pattern)))[:1]:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                loaded.append(path)
    return loaded


class GPUError(ValueError):
    """A GPU that this MXNet build cannot use (``common.cli`` reports it in one line)."""


def _cuda_call(cuda, name, *args):
    status = getattr(cuda, name)(*args)
    if status:
        text = ctypes.c_char_p()
        cuda.cuGetErrorString(status, ctypes.byref(text))
        raise GPUError(f"CUDA driver: {name} failed: "
                       f"{(text.value or b'error %d' % status).decode()}")


def compute_capability(device_id):
    """(major, minor, name) of CUDA device ``device_id``, asked of the driver directly."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        raise GPUError("no NVIDIA driver (libcuda.so.1) on this machine: GPUs cannot be "
                       "used; train on the CPU instead") from None
    device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    _cuda_call(cuda, "cuInit", 0)
    _cuda_call(cuda, "cuDeviceGet", ctypes.byref(device), device_id)
    _cuda_call(cuda, "cuDeviceGetAttribute", ctypes.byref(major), 75, device)  # ..._MAJOR
    _cuda_call(cuda, "cuDeviceGetAttribute", ctypes.byref(minor), 76, device)  # ..._MINOR
    _cuda_call(cuda, "cuDeviceGetName", name, len(name), device)
    return major.value, minor.value, name.value.decode(errors="replace")


def check_gpus(contexts):
    """Raise GPUError, before MXNet touches them, for GPUs among ``contexts`` that MXNet
    1.9.1 has no code for (Hopper, sm_90, and newer; Kepler), where it would crash or hang.
    CPU contexts are not looked at."""
    for ctx in contexts:
        if ctx.device_type != "gpu":
            continue
        major, minor, name = compute_capability(ctx.device_id)
        if not any(sm // 10 == major and sm % 10 <= minor for sm in MXNET_CUBINS):
            raise GPUError(
                f"GPU {ctx.device_id} ({name}) has compute capability {major}.{minor}, and "
                f"MXNet 1.9.1 binaries carry code only for "
                f"{', '.join(f'sm_{sm}' for sm in MXNET_CUBINS)}: use such a GPU "
                "(Maxwell to Ada, e.g. V100, A100, L4) or train on the CPU")


if int(np.__version__.split(".")[0]) >= 2:
    raise ImportError(f"MXNet 1.9.1 does not work with NumPy {np.__version__}: "
                      "pip install 'numpy<2'")
if "bool" not in np.__dict__:
    np.bool = bool

os.environ.setdefault("OMP_NUM_THREADS", str(physical_cores()))
# Binding a graph would otherwise log "Subgraph backend MKLDNN is activated" every time.
os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
preload_cuda11()

try:
    import mxnet as mx  # noqa: E402
    import mxnet.contrib.amp  # noqa: E402,F401 (mx.contrib.amp: symbols.precision's bfloat16)
except ImportError as err:
    if getattr(err, "name", None) != "mxnet":
        raise
    raise ImportError("MXNet is not installed: pip install -e '.[cpu]' "
                      "(or '.[gpu]' for CUDA 11.2 GPUs)") from None
except OSError as err:  # mxnet-cu112 on a machine without the NVIDIA driver
    if "libcuda.so" not in str(err):
        raise
    raise ImportError("this MXNet build is for CUDA GPUs and needs the NVIDIA driver "
                      "(libcuda.so.1), which is missing: install the driver, or "
                      "pip install -e '.[cpu]'") from None

__all__ = ["mx", "physical_cores", "check_gpus", "compute_capability", "GPUError"]
