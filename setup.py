"""Deep residual networks (He et al. 2015, 2016) on MXNet's symbolic API."""
from setuptools import find_packages, setup

# CUDA 11 runtime libraries that mxnet-cu112 links against, from PyPI (see README, GPU).
CUDA11 = ["nvidia-cuda-runtime-cu11", "nvidia-cublas-cu11", "nvidia-cudnn-cu11<9",
          "nvidia-nccl-cu11", "nvidia-cuda-nvrtc-cu11", "nvidia-cufft-cu11",
          "nvidia-curand-cu11", "nvidia-cusolver-cu11", "nvidia-nvtx-cu11"]
# ONNX export and onnxruntime inference (docs/deployment.md). onnx stays below 1.16: MXNet
# 1.9.1's exporter imports onnx.mapping, which 1.16 removed (and onnx 1.23 needs ml_dtypes
# >= 0.5.4, which needs numpy 2). onnxruntime 1.17 is the first to run onnx 1.15's opset 20;
# tested with onnx 1.14.1 and 1.15.0, onnxruntime 1.32.0, numpy 1.26.
ONNX = ["onnx>=1.14.1,<1.16", "onnxruntime>=1.17"]

setup(
    name="resnet-identity-mappings",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["common", "common.*", "symbols", "symbols.*",
                                    "data", "data.*", "training", "training.*",
                                    "plots", "plots.*", "experiments", "experiments.*"]),
    py_modules=["train_cifar", "train_imagenet"],
    install_requires=["numpy>=1.17,<2", "tqdm>=4", "matplotlib>=3.3"],
    extras_require={
        "cpu": ["mxnet==1.9.1"],
        "gpu": ["mxnet-cu112==1.9.1"] + CUDA11,
        "onnx": ONNX,
        "slurm": ["submitit>=1.5"],
        "test": ["pytest>=7", "mxnet==1.9.1", "submitit>=1.5"] + ONNX,
    },
    entry_points={"console_scripts": [
        "resnet-train-cifar=train_cifar:main",
        "resnet-train-imagenet=train_imagenet:main",
        "resnet-symbols=symbols.__main__:main",
    ]},
)
