"""Install and import plumbing: the one MXNet import, the README's commands, CI."""
import os
import re
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT

BLOCK_MXNET = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "mxnet" or name.startswith("mxnet."):
            raise ModuleNotFoundError("No module named 'mxnet'", name="mxnet")
sys.meta_path.insert(0, Block())
"""


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)


def test_missing_mxnet_says_in_one_line_how_to_install():
    out = run_python(BLOCK_MXNET + "import symbols")
    assert out.returncode != 0
    assert "MXNet is not installed: pip install -e '.[cpu]'" in out.stderr.strip().splitlines()[-1]


def test_scripts_report_missing_mxnet_in_one_line():
    # Entry points import the project inside run_main, as train_cifar.main does.
    out = run_python(BLOCK_MXNET + "from common.cli import run_main\n"
                     "run_main(lambda argv: __import__('symbols'), [], 'x')")
    assert out.returncode == 2
    assert out.stderr.strip() == ("x: error: MXNet is not installed: pip install -e '.[cpu]' "
                                  "(or '.[gpu]' for CUDA 11.2 GPUs) "
                                  "(RESNET_TRACEBACK=1 shows the traceback)")


MXNET_IMPORT = re.compile(r"^\s*(import mxnet|from mxnet)\b", re.MULTILINE)


def test_only_common_mx_imports_mxnet():
    offenders = []
    for folder, _, files in os.walk(ROOT):
        if any(part.startswith(".") or part in ("build", "tests") for part in
               os.path.relpath(folder, ROOT).split(os.sep)):
            continue
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and path != os.path.join(ROOT, "common", "mx.py"):
                text = open(path).read()
                if MXNET_IMPORT.search(text):
                    offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []


def test_numpy_bool_alias_restored_and_threads_set():
    from common.mx import mx, physical_cores
    assert np.bool is bool and mx.__version__ == "1.9.1"
    assert physical_cores() >= 1 and os.environ["OMP_NUM_THREADS"]


def readme_commands():
    lines = open(os.path.join(ROOT, "README.md")).read().split("## Quick start")[1].split("\n## ")[0]
    return [line.strip() for line in lines.splitlines() if line.startswith("    ")]


def test_ci_runs_exactly_the_readme_test_command():
    commands = readme_commands()
    [test] = [command for command in commands if "pytest" in command]
    assert any("train_cifar.py" in command for command in commands)
    ci = [line for line in open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
          if line and not line.startswith(("#", "set ", "cd "))]
    # System packages may be installed first; the test command itself ends the script.
    assert ci[-1] == test and sum(test in line for line in ci) == 1
