"""The run folder: the name of every file a run writes, and the one way to read and write
each. It imports no MXNet, so ``plots`` and ``python3 -m experiments status`` read runs
without it (``training.checkpoint`` adds what needs MXNet: parameters and symbols).

A run directory holds

- ``config.json``: the flags and what they resolved to;
- ``metrics.jsonl``: one JSON record an epoch, rewritten whole (atomically) each epoch;
- checkpoints in MXNet's layout, ``model-symbol.json`` and ``model-0003.params``
  (``mx.model.load_checkpoint``), the optimizer states ``model-0003.states`` and a
  manifest ``model-0003.json``, written last, with the files' SHA-256: a checkpoint
  without its manifest is incomplete and ignored;
- where a launcher started it (``experiments.jobs``): ``train.log`` (its output),
  ``launch.json`` (how it was launched and where it stands) and ``done.json`` (written
  once the training exited with status 0).

An experiment folder (a table, the findings) holds its runs, ``plan.json``, the lock of
its runner ``.runner.lock``, submitit's files under ``slurm/``, and what it makes of its
finished runs: ``table.md``, ``table.csv`` and ``figure.png|pdf`` (a table), or
``findings.json``, ``findings.md`` and ``figures/`` (the findings).
"""
import contextlib
import glob
import json
import logging
import os
import re
import time

from common.files import read_json, write_json, write_text
from training.args import typed_flags

CONFIG = "config.json"
METRICS = "metrics.jsonl"
PREFIX = "model"
MANIFEST_RE = re.compile(rf"^{PREFIX}-(\d{{4,}})\.json$")
LOG = "train.log"
LAUNCH = "launch.json"
DONE = "done.json"
PLAN = "plan.json"
RUNNER_LOCK = ".runner.lock"  # held while an experiment's runner runs
SLURM = "slurm"  # submitit's files
TABLE_MD, TABLE_CSV, TABLE_FIGURE = "table.md", "table.csv", "figure"
FINDINGS_JSON, FINDINGS_MD, FINDINGS_FIGURES = "findings.json", "findings.md", "figures"
log = logging.getLogger(__name__)
_warned = set()  # (file, line) pairs already reported: a figure and a table read a run twice


def _warn(path, n, message, *args):
    if (path, n) not in _warned:
        _warned.add((path, n))
        log.warning("%s:%d: " + message, path, n, *args)


# ---- metrics -----------------------------------------------------------------------------

def read_metrics(run_dir, required=False):
    """The per-epoch records of ``run_dir/metrics.jsonl``, in file order.

    A last line that is not valid JSON is being written (a run in progress, a copy under
    way): it is skipped with a warning. A bad line anywhere else is skipped with a warning
    that names the file and line; an epoch that does not follow the one before (two runs
    wrote into one directory) is kept, with a warning. Each line is reported once per
    process. Without the file: [] or, where ``required``, a one-line error, as for a file
    with no complete record.
    """
    path = os.path.join(run_dir, METRICS)
    if required and not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    if not os.path.isfile(path):
        if required:
            raise FileNotFoundError(f"no {METRICS} in run directory {run_dir}")
        return []
    with open(path) as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
    records = []
    for i, (n, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                _warn(path, n, "partly written last line skipped")
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
    if required and not records:
        raise ValueError(f"{path}: no complete epoch recorded yet")
    return records


def error_percent(record, key="val_acc"):
    """Error in percent from an epoch record's accuracy ``key`` (the evaluated images'
    by default), or None where the record has none."""
    acc = record.get(key)
    return None if acc is None else 100.0 * (1.0 - float(acc))


def finished_metrics(run_dir):
    """The epoch records of a run that has finished (``done.json``), [] before: what an
    experiment reads of its runs' results."""
    return read_metrics(run_dir) if is_done(run_dir) else []


def write_metrics(run_dir, records):
    write_text(os.path.join(run_dir, METRICS),
               "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def append_metrics(run_dir, record):
    """Add one epoch's record; the file is rewritten atomically (it is small)."""
    write_metrics(run_dir, read_metrics(run_dir) + [record])


def truncate_metrics(run_dir, epoch):
    """Drop the records of epochs after ``epoch`` (they were not checkpointed)."""
    records = read_metrics(run_dir)
    kept = [r for r in records if r.get("epoch", 0) <= epoch]
    if len(kept) != len(records):
        write_metrics(run_dir, kept)
    return kept


# ---- config ------------------------------------------------------------------------------

def read_config(run_dir):
    """The run's ``config.json`` ({} when it has none), its flags in the typed form of
    ``training.args.typed_flags`` whichever version wrote it; ValueError naming a corrupt
    one."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        return {}
    config = read_json(path)
    try:
        return typed_flags(config)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def write_config(run_dir, config):
    write_json(os.path.join(run_dir, CONFIG), config)


# settings a resumed run may change without changing what its next epochs compute
RESUME_MAY_CHANGE = {"resume", "load_epoch", "num_epochs", "num_iters", "planned_epochs",
                     "planned_iterations", "disp_batches", "export", "no_plots",
                     "keep_checkpoints", "download", "output_dir", "data_dir", "data_nthreads",
                     "mxnet_version", "python_version"}


def warn_config_changes(run_dir, config):
    """Warn, in one line, about the settings of ``config`` that differ from the run's
    ``config.json`` (a resumed run then no longer equals an uninterrupted one), or when
    that file cannot be read."""
    try:
        old = typed_flags(read_json(os.path.join(run_dir, CONFIG)))
    except (OSError, ValueError) as err:
        log.warning("the settings of the run cannot be compared (%s); %s is written anew",
                    err, CONFIG)
        return

    def text(value):
        return json.dumps(value, sort_keys=True)
    changed = [f"{k} {text(config.get(k))} (was {text(old.get(k))})"
               for k in sorted(set(config) | set(old))
               if k not in RESUME_MAY_CHANGE and text(config.get(k)) != text(old.get(k))]
    if changed:
        log.warning("resuming %s with settings that differ from its %s: %s", run_dir, CONFIG,
                    ", ".join(changed))


# ---- checkpoints -------------------------------------------------------------------------

def checkpoint_files(epoch):
    """File names of the checkpoint after ``epoch`` epochs."""
    return {"symbol": f"{PREFIX}-symbol.json", "params": f"{PREFIX}-{epoch:04d}.params",
            "states": f"{PREFIX}-{epoch:04d}.states", "manifest": f"{PREFIX}-{epoch:04d}.json"}


def check_manifest(path, epoch=None):
    """The manifest at ``path``; ValueError saying why it cannot be used (unreadable, names
    another epoch than ``epoch``, or a file that is missing)."""
    try:
        with open(path) as f:
            manifest = json.load(f)
        files = manifest["files"]
        names = list(files.values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"unreadable manifest {os.path.basename(path)} "
                         f"({type(err).__name__}: {err})") from None
    if epoch is not None and manifest.get("epoch") != epoch:
        raise ValueError(f"manifest {os.path.basename(path)} names epoch "
                         f"{manifest.get('epoch')!r}")
    missing = [f for f in names if not os.path.isfile(os.path.join(os.path.dirname(path), f))]
    if missing:
        raise ValueError(f"{missing[0]} is missing")
    return manifest


def scan_checkpoints(run_dir):
    """({epoch: manifest} of the complete checkpoints of ``run_dir``, {epoch: why} of those
    whose manifest cannot be used)."""
    found, bad = {}, {}
    for path in glob.glob(os.path.join(glob.escape(run_dir), f"{PREFIX}-*.json")):
        match = MANIFEST_RE.match(os.path.basename(path))
        if match:
            epoch = int(match.group(1))
            try:
                found[epoch] = check_manifest(path, epoch)
            except ValueError as err:
                bad[epoch] = str(err)
    return found, bad


def list_checkpoints(run_dir):
    """Complete checkpoints of ``run_dir`` as {epoch: manifest}."""
    return scan_checkpoints(run_dir)[0]


def find_checkpoint(run_dir, epoch=None):
    """The manifest of checkpoint ``epoch``, or of the newest complete one if None.

    Returns None when ``run_dir`` has no complete checkpoint; raises ValueError when the
    requested epoch has none.
    """
    found = list_checkpoints(run_dir)
    if epoch is None:
        return found[max(found)] if found else None
    if epoch not in found:
        have = ", ".join(map(str, sorted(found))) or "none"
        raise ValueError(f"no complete checkpoint of epoch {epoch} in {run_dir} "
                         f"(complete: {have})")
    return found[epoch]


def prune_checkpoints(run_dir, keep):
    """Delete all but the newest ``keep`` complete checkpoints (keep <= 0: delete none)."""
    found = list_checkpoints(run_dir)
    if keep <= 0:
        return
    for epoch in sorted(found)[:-keep]:
        names = checkpoint_files(epoch)
        # manifest first: a half-deleted checkpoint is then merely incomplete
        for key in ("manifest", "params", "states"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(run_dir, names[key]))


# ---- what a launcher records -------------------------------------------------------------

def has_started(run_dir):
    return any(os.path.exists(os.path.join(run_dir, f)) for f in (CONFIG, METRICS))


def is_done(run_dir):
    return os.path.isfile(os.path.join(run_dir, DONE))


def mark_done(run_dir, command):
    """Record that the training ``command`` (without the interpreter) ended well."""
    write_json(os.path.join(run_dir, DONE), {"command": list(command)})


def read_launch(run_dir):
    """The run's launch.json ({} when it has none, or while it is being replaced)."""
    try:
        with open(os.path.join(run_dir, LAUNCH)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def record_launch(run_dir, **fields):
    """Update launch.json with ``fields`` (one writer at a time: whoever runs the run)."""
    os.makedirs(run_dir, exist_ok=True)
    write_json(os.path.join(run_dir, LAUNCH), dict(read_launch(run_dir), **fields,
                                                   updated=time.time()))


def log_path(run_dir):
    return os.path.join(run_dir, LOG)


def last_line(run_dir, size=8192):
    """The last non-blank line of the run's train.log ("" when there is none)."""
    try:
        with open(log_path(run_dir), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---- an experiment folder ----------------------------------------------------------------

def read_plan(out_dir):
    """``OUT/plan.json`` of an experiment launched before, or None (ValueError naming a
    corrupt one)."""
    path = os.path.join(out_dir, PLAN)
    return read_json(path) if os.path.isfile(path) else None


def write_plan(out_dir, plan):
    write_json(os.path.join(out_dir, PLAN), plan)
