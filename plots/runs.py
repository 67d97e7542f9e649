"""What the figures and tables say of a run: its label and what its error measures. The
files are read through ``training.rundir``, the one owner of the run folder."""
import os

from training.rundir import read_config


def run_label(run_dir):
    """A legend label from the run's config, e.g. ``ResNet-110 full_preact identity``,
    followed by the shortcut's settings (``--shortcut-param``) if any, e.g.
    ``ResNet-110 full_preact constant_scaling scale=0.8``.

    Falls back to the directory name when the config lacks the depth.
    """
    config = read_config(run_dir)
    if "num_layers" not in config:
        return os.path.basename(os.path.normpath(run_dir))
    parts = [f"ResNet-{config['num_layers']}", config.get("unit"), config.get("shortcut")]
    parts += [f"{k}={v}" for k, v in (config.get("shortcut_param") or {}).items()]
    return " ".join(str(p) for p in parts if p)


def evaluated_set(run_dirs):
    """What the runs' ``val_acc`` measures: ``"test"`` (a CIFAR run's test batch),
    ``"validation"`` (images held out of the training set, or ImageNet's validation set),
    or ``"held-out"`` when the runs differ."""
    names = set()
    for run_dir in run_dirs:
        config = read_config(run_dir)
        imagenet = "data_nthreads" in config  # a field of ImagenetConfig alone
        held_out = imagenet or config.get("validation_split") or config.get("validation_images")
        names.add("validation" if held_out else "test")
    return names.pop() if len(names) == 1 else "held-out"
