"""The one way experiments train: rows (networks), their training commands, and a plan of
runs launched under a lock and reported when they end.

The tables (``experiments.tables``) and the findings (``experiments.measure_findings``)
both build their runs here: a :class:`Row` names a network, :func:`train_command` makes
the ``train_cifar`` command of one of its seeds with the CIFAR recipe (whole or scaled,
``training.recipe``), and :func:`run_plan` trains every run of an experiment folder through
``experiments.launch`` (``--jobs N`` here, or a Slurm job array), one runner per folder at a
time. Each run lives in its own folder, so an interrupted plan resumes: finished runs are
skipped, unfinished ones resume from their newest checkpoint.
"""
import os
import sys
from dataclasses import dataclass, field

from common.files import lock_dir
from experiments.launch import launch
from experiments.runstate import describe_status
from training.recipe import CIFAR
from training.rundir import RUNNER_LOCK, SLURM, write_plan



def branch_of(num_layers, bottleneck=None):
    """'bottleneck' or 'basic': the branch of the CIFAR net of ``num_layers`` layers that
    ``symbols`` builds (``bottleneck`` None: its choice by depth)."""
    from symbols.resnet import cifar_layout  # imports MXNet: only where a branch is asked
    return cifar_layout(num_layers, bottleneck)[0]


@dataclass(frozen=True)
class Row:
    """A network of an experiment: depth, residual unit (Fig. 4 of the 2016 paper),
    shortcut (its Fig. 2) with its settings, projection (2015 paper, Sec. 3.3), branch type
    (None: by depth) and data set."""
    name: str
    num_layers: int
    unit: str = "original"
    shortcut: str = "identity"
    params: dict = field(default_factory=dict)
    projection: str = "B"
    bottleneck: bool = None
    dataset: str = "cifar10"

    @property
    def branch(self):
        """'bottleneck' or 'basic', as ``symbols`` chooses it for this row."""
        return branch_of(self.num_layers, self.bottleneck)

    def flags(self, depth=None):
        """The model flags of ``train_cifar`` for this row (at ``depth`` layers if given)."""
        flags = ["--dataset", self.dataset, "--num-layers", str(depth or self.num_layers),
                 "--unit", self.unit, "--shortcut", self.shortcut,
                 "--projection", self.projection]
        if self.bottleneck is not None:
            flags += ["--bottleneck", "yes" if self.bottleneck else "no"]
        for name, value in self.params.items():
            flags += ["--shortcut-param", f"{name}={value}"]
        return flags


def train_command(row, run_dir, data_dir, seed, schedule, depth=None, batch_size=None,
                  data_flags=(), extra_args=()):
    """The ``train_cifar`` command line of seed ``seed`` of ``row``: trained at ``depth``
    layers (default: the row's) with the CIFAR recipe on ``schedule`` (a
    ``training.recipe.Schedule``), the ``data_flags`` that choose its images and the
    user's ``extra_args`` last. ``--resume`` is added when it is launched."""
    return ([sys.executable, "-m", "train_cifar", "--data-dir", data_dir,
             "--output-dir", run_dir, "--seed", str(seed)] + row.flags(depth)
            + CIFAR.flags(schedule, batch_size) + list(data_flags) + list(extra_args))


def run_plan(out_dir, plan, runs, launch_config=None, log=print, warning=None, before=None,
             report=None):
    """Train ``runs`` ([(run_dir, command)]) of the experiment folder ``out_dir``, holding
    its lock (one runner per folder at a time; each training locks its own run folder).

    ``warning`` is logged, ``plan`` (a dict) is written to ``OUT/plan.json`` with the
    runs, and ``before()`` runs (the findings' probes); then the runs go through
    ``experiments.launch.launch`` as ``launch_config`` (a LaunchConfig; default: one run
    at a time here) says. A failed run is logged and the others go on; with Slurm the
    jobs are submitted and not waited for. Returns ``report()`` (what the experiment makes
    of its finished runs), or the failures where there is no ``report``."""
    with lock_dir(out_dir, RUNNER_LOCK):
        if warning:
            log(warning)
        write_plan(out_dir, dict(plan, runs=[os.path.relpath(d, out_dir) for d, _ in runs]))
        if before is not None:
            before()
        failures = launch(runs, launch_config, log, slurm_folder=os.path.join(out_dir, SLURM))
        for f in failures:
            log(f"FAILED {f['run_dir']} ({describe_status(f['status'])}): {f['last_line']}")
        return failures if report is None else report()
