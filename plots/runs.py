"""What the figures and tables say of a run: its label and what its error measures, asked
of the run's record (``training.rundir.RunRecord``), read through ``training.rundir``, the
one owner of the run folder."""
import os

from training.rundir import read_run


def run_label(run_dir):
    """A legend label from the run's record, e.g. ``ResNet-110 full_preact identity``,
    followed by the shortcut's settings (``--shortcut-param``) if any, e.g.
    ``ResNet-110 full_preact constant_scaling scale=0.8``.

    Falls back to the directory name when the run has no record or it lacks the depth.
    """
    record = read_run(run_dir)
    label = record.label() if record is not None else None
    return label or os.path.basename(os.path.normpath(run_dir))


def evaluated_set(run_dirs):
    """What the runs' ``val_acc`` measures: ``"test"`` (a CIFAR run's test batch),
    ``"validation"`` (images held out of the training set, or ImageNet's validation set),
    or ``"held-out"`` when the runs differ. A run without a record counts as tested."""
    names = set()
    for run_dir in run_dirs:
        record = read_run(run_dir)
        names.add(record.evaluated if record is not None else "test")
    return names.pop() if len(names) == 1 else "held-out"
