"""What the figures and tables say of a run: its label and its error. The files are read
through ``training.rundir``, the one owner of the run folder."""
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


def error_percent(record, key="val_acc"):
    """Error in percent from a record's accuracy ``key`` (test accuracy by default), or
    None if not recorded."""
    acc = record.get(key)
    return None if acc is None else 100.0 * (1.0 - float(acc))
