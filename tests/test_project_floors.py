"""The floors of the project: every module imports only from its own package and from the
floors below it (imports inside functions count too), and every command the README lists
still runs."""
import ast
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Ground first; a package on one floor never imports another package on the same floor.
FLOORS = (("common",), ("symbols", "data"), ("training",), ("plots",), ("experiments",),
          ("train_cifar", "train_imagenet"), ("benchmarks",))
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}


def imported_packages(path):
    """(line, top-level name) of every absolute import in the file at ``path``."""
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            yield node.lineno, name.split(".")[0]


def upward_imports(root):
    """'path:line imports X' for every import of a project package on the same or a
    higher floor than the importing file's own package."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("build", "tests")]
        for name in sorted(files):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            own = rel.split(os.sep)[0].removesuffix(".py")
            if not name.endswith(".py") or own not in FLOOR:
                continue
            for line, package in imported_packages(path):
                if package in FLOOR and package != own and FLOOR[package] >= FLOOR[own]:
                    found.append(f"{rel}:{line} imports {package}")
    return sorted(found)


def test_no_import_runs_up_the_floors():
    assert upward_imports(ROOT) == []


def test_an_upward_import_is_found(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "training").mkdir()
    (tmp_path / "common" / "x.py").write_text("import os\n\ndef f():\n    import plots\n")
    (tmp_path / "training" / "y.py").write_text("from training import z\nfrom common import x\n"
                                                "from experiments.jobs import launch\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "w.py").write_text("from . import cifar\nfrom symbols import layers\n")
    assert upward_imports(tmp_path) == ["common/x.py:4 imports plots",
                                        "data/w.py:2 imports symbols",
                                        "training/y.py:3 imports experiments"]


def readme_command_table():
    """The commands of the README's table of commands, alternatives spelt out:
    '`python3 -m data download` / `sample`' gives both commands."""
    commands = []
    for row in open(os.path.join(ROOT, "README.md")):
        codes = re.findall(r"`([^`]+)`", row.split("|")[1]) if row.startswith("| `python3") else []
        if codes:
            base = codes[0].rsplit(" ", 1)[0] if len(codes) > 1 else codes[0]
            commands += [codes[0]] + [f"{base} {alt}" for alt in codes[1:]]
    return commands


def entry_points(root):
    """How every runnable file under ``root`` is started: 'python3 -m pkg[.module]' for
    packages, 'python3 path.py' for the scripts and the benchmarks."""
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("build", "tests")]
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or "__name__ == \"__main__\"" not in open(path).read():
                continue
            rel = os.path.relpath(path, root)
            if rel.startswith("benchmarks") or os.sep not in rel:
                found.add(f"python3 {rel}")
            else:
                module = rel.removesuffix(".py").removesuffix("/__main__").replace(os.sep, ".")
                found.add(f"python3 -m {module}")
    return found


def test_the_readme_lists_every_entry_point():
    listed = {" ".join(c.split()[:3 if c.split()[1] == "-m" else 2])
              for c in readme_command_table()}
    assert entry_points(ROOT) - listed == set()


@pytest.mark.parametrize("command", readme_command_table())
def test_every_readme_command_runs(command):
    argv = [sys.executable] + command.split()[1:] + ["--help"]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ")
