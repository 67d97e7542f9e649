"""Reading run directories: the per-epoch metrics and the run's configuration."""
import json
import logging
import os

METRICS = "metrics.jsonl"
CONFIG = "config.json"
log = logging.getLogger(__name__)
_warned = set()  # (file, line) pairs already reported: a figure and a table read a run twice


def _warn(path, n, message, *args):
    if (path, n) not in _warned:
        _warned.add((path, n))
        log.warning("%s:%d: " + message, path, n, *args)


def _check_run_dir(run_dir):
    if not os.path.isdir(run_dir):
        raise OSError(f"run directory not found: {run_dir}")


def load_metrics(run_dir):
    """The per-epoch records of ``run_dir/metrics.jsonl``, in file order.

    A run still in progress may have a partly written last line: a trailing line that
    is not valid JSON is ignored. A bad line anywhere else is skipped with a warning that
    names the file and line; an epoch that does not follow the one before (two runs wrote
    into one directory) is kept, with a warning. Each line is reported once per process.
    A missing file or a file with no complete record raises a one-line error.
    """
    _check_run_dir(run_dir)
    path = os.path.join(run_dir, METRICS)
    if not os.path.isfile(path):
        raise OSError(f"no {METRICS} in run directory {run_dir}")
    with open(path) as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
    records = []
    for i, (n, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:  # being written right now
                break
            _warn(path, n, "not a JSON record; line skipped")
            continue
        if not isinstance(record, dict):
            _warn(path, n, "not a JSON object; line skipped")
            continue
        last = records[-1].get("epoch") if records else 0
        if isinstance(last, int) and isinstance(record.get("epoch"), int) and \
                record["epoch"] <= last:
            _warn(path, n, "epoch %d after epoch %d (did two runs write here?)",
                  record["epoch"], last)
        records.append(record)
    if not records:
        raise ValueError(f"{path}: no complete epoch recorded yet")
    return records


def load_config(run_dir):
    """The run's arguments from ``run_dir/config.json``, or ``{}`` when it has none."""
    _check_run_dir(run_dir)
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        try:
            config = json.load(f)
        except ValueError:
            raise ValueError(f"{path}: not valid JSON") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return config


def run_label(run_dir):
    """A legend label from the run's config, e.g. ``ResNet-110 full_preact identity``,
    followed by the shortcut's settings (``--shortcut-param``) if any, e.g.
    ``ResNet-110 full_preact constant_scaling scale=0.8``.

    Falls back to the directory name when the config lacks the depth.
    """
    config = load_config(run_dir)
    if "num_layers" not in config:
        return os.path.basename(os.path.normpath(run_dir))
    parts = [f"ResNet-{config['num_layers']}", config.get("unit"), config.get("shortcut")]
    parts += config.get("shortcut_param") or []
    return " ".join(str(p) for p in parts if p)


def error_percent(record, key="val_acc"):
    """Test error in percent from a record's accuracy ``key``, or None if not recorded."""
    acc = record.get(key)
    return None if acc is None else 100.0 * (1.0 - float(acc))
