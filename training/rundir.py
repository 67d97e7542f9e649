"""The run folder: the name of every file a run writes, and the one way to read and write
each. It imports no MXNet, so ``plots`` and ``python3 -m experiments status`` read runs
without it (``training.checkpoint`` adds what needs MXNet: parameters and symbols).

A run directory holds

- ``config.json``: the run's record (``RunRecord``): its flags, what they resolved to,
  the preprocessing of its images, the CPU and the versions;
- ``metrics.jsonl``: one JSON record an epoch, rewritten whole (atomically) each epoch;
- checkpoints in MXNet's layout, ``model-symbol.json`` and ``model-0003.params``
  (``mx.model.load_checkpoint``), the optimizer states ``model-0003.states`` and a
  manifest ``model-0003.json``, written last, with the files' SHA-256: a checkpoint
  without its manifest is incomplete and ignored;
- where a launcher started it (``experiments.launch``): ``train.log`` (its output),
  ``launch.json`` (how it was launched and where it stands) and ``done.json`` (written
  once the training exited with status 0).

An experiment folder (a table, the findings) holds its runs, seed k of a row in
``runs/<row>/seed<k>`` (``experiment_run_dir``), ``plan.json``, the lock of
its runner ``.runner.lock``, submitit's files under ``slurm/``, and what it makes of its
finished runs: ``table.md``, ``table.csv`` and ``figure.png|pdf`` (a table), or
``findings.json``, ``findings.md`` and ``figures/`` (the findings).
"""
import contextlib
import dataclasses
import glob
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Optional

from common.cli import (UsageError, parse_gpus, parse_image_shape, parse_ints,
                        parse_shortcut_params, parse_yes_no)
from common.files import read_json, write_json, write_text

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
MEAN_IMAGE = "mean_image.npy"  # the per-pixel mean of an ImageNet run's crops
RUNS, PROBES = "runs", "probe"  # an experiment's training runs, its probes' measurements
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


# ---- config.json: the run's record -------------------------------------------------------

def _image_shape(value):
    try:
        return parse_image_shape(value)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _steps(flag):
    def parse(value):
        if isinstance(value, (list, tuple)):
            return tuple(int(i) for i in value)
        return tuple(parse_ints(value, flag))
    return parse


def _shortcut_params(value):
    return value if isinstance(value, dict) else parse_shortcut_params(value)


# the flags the command line gives as text, and what types each
TYPED = {"image_shape": _image_shape,
         "bottleneck": lambda value: parse_yes_no(value, "--bottleneck"),
         "shortcut_param": _shortcut_params, "gpus": parse_gpus,
         "lr_step_epochs": _steps("--lr-step-epochs"),
         "lr_step_iters": _steps("--lr-step-iters")}


def typed_values(flags):
    """``flags`` (the parsed flags, or config.json's record of them, whichever version
    wrote it) with the values the command line gives as text typed: image_shape a tuple,
    bottleneck True/False/None, shortcut_param a dict, gpus and the lr steps tuples of
    ints. Values typed already stay; keys it lacks stay absent, other keys unchanged."""
    typed = dict(flags)
    for key, convert in TYPED.items():
        if key in flags:
            typed[key] = convert(flags[key])
    return typed


def typed_flags(config):
    """``typed_values`` of a config.json's dict, in the form config.json records (lists
    for tuples): files written before hold the command line's text (image_shape
    "3,32,32", bottleneck "yes", shortcut_param ["scale=0.5"], gpus "0,1" or null,
    lr_step_epochs / lr_step_iters "81,122" or null)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in typed_values(config).items()}


@dataclass(frozen=True)
class Preprocess:
    """How images were prepared for the network, so that inference does the same: resize
    the shorter side to ``resize``, crop the centre ``crop`` x ``crop``, subtract ``mean``
    and divide by ``std`` (per channel, 0-255 pixels), or subtract the per-pixel mean of
    the file ``mean_image`` in the run folder where there is one."""
    image_shape: tuple  # (channels, height, width)
    resize: int
    crop: int
    mean: tuple
    std: tuple
    mean_image: Optional[str] = None

    @classmethod
    def from_json(cls, record):
        """The Preprocess of config.json's ``preprocess`` dict (what the training scripts
        built before this record existed); ValueError naming a key it does not know."""
        unknown = set(record) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"preprocess: unknown {', '.join(sorted(unknown))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()})

    def to_json(self):
        record = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in dataclasses.asdict(self).items()}
        if self.mean_image is None:
            del record["mean_image"]
        return record


EVALUATED_SETS = ("test", "validation")


@dataclass(frozen=True)
class RunRecord:
    """What ``config.json`` records of a run: its flags under their names, typed
    (``typed_flags``), what its ``val_acc`` measures (``evaluated``: the test set, or
    images held out of training), how its images were preprocessed and its class names,
    what the flags resolved to, and the CPU and versions it ran on. The file keeps them
    side by side in one JSON object; ``write_config`` writes it, ``read_run`` reads it."""
    flags: dict
    evaluated: str = "test"
    preprocess: Optional[Preprocess] = None
    classes: Optional[tuple] = None
    contexts: tuple = ()
    rank: int = 0
    num_workers: int = 1
    batches_per_epoch: Optional[int] = None
    planned_epochs: Optional[int] = None
    planned_iterations: Optional[int] = None
    lr_steps_iterations: tuple = ()
    warmup_iterations: Optional[int] = None
    symbol_sha256: Optional[str] = None
    cpu: Optional[str] = None
    mxnet_version: Optional[str] = None
    python_version: Optional[str] = None

    def __post_init__(self):
        if self.evaluated not in EVALUATED_SETS:
            raise ValueError(f"evaluated must be one of {', '.join(EVALUATED_SETS)}, got "
                             f"{self.evaluated!r}")

    @classmethod
    def from_json(cls, record):
        """The RunRecord of config.json's object, whichever version wrote it. Files
        written before ``evaluated`` was recorded say it by their flags: an ImageNet run
        (decoding threads), --validation-split or --validation-images validate on held-out
        images, the other CIFAR runs test on the test batch."""
        named = {f.name for f in dataclasses.fields(cls)} - {"flags"}
        flags = typed_flags({k: v for k, v in record.items() if k not in named})
        values = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in record.items() if k in named}
        if isinstance(values.get("preprocess"), dict):
            values["preprocess"] = Preprocess.from_json(values["preprocess"])
        if "evaluated" not in values:
            held_out = "data_nthreads" in flags or flags.get("validation_split") or \
                flags.get("validation_images")
            values["evaluated"] = "validation" if held_out else "test"
        return cls(flags, **values)

    def to_json(self):
        """The JSON object of config.json: the flags, then the other fields that are set
        (lists for tuples)."""
        record = typed_flags(self.flags)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "flags" or value is None:
                continue
            record[f.name] = value.to_json() if isinstance(value, Preprocess) else \
                list(value) if isinstance(value, tuple) else value
        return record

    def label(self):
        """A legend label, e.g. ``ResNet-110 full_preact constant_scaling scale=0.8``
        (the shortcut's settings where there are any); None without the depth."""
        flags = self.flags
        if "num_layers" not in flags:
            return None
        parts = [f"ResNet-{flags['num_layers']}", flags.get("unit"), flags.get("shortcut")]
        parts += [f"{k}={v}" for k, v in (flags.get("shortcut_param") or {}).items()]
        return " ".join(str(p) for p in parts if p)


def read_run(run_dir):
    """The ``RunRecord`` of the run's ``config.json``, None when it has none; ValueError
    naming a corrupt one."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        return None
    record = read_json(path)  # its ValueError names the file
    try:
        return RunRecord.from_json(record)
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: {err}") from None


def read_config(run_dir):
    """The run's ``config.json`` as one JSON object ({} when it has none), as
    ``read_run`` reads it: for readers of its keys (the export)."""
    record = read_run(run_dir)
    return {} if record is None else record.to_json()


def write_config(run_dir, record):
    """Write ``record`` (a ``RunRecord``) as the run's config.json."""
    write_json(os.path.join(run_dir, CONFIG), record.to_json())


# settings a resumed run may change without changing what its next epochs compute
RESUME_MAY_CHANGE = {"resume", "load_epoch", "num_epochs", "num_iters", "planned_epochs",
                     "planned_iterations", "disp_batches", "export", "no_plots",
                     "keep_checkpoints", "download", "output_dir", "data_dir", "data_nthreads",
                     "mxnet_version", "python_version"}


def warn_config_changes(run_dir, record):
    """Warn, in one line, about the settings of ``record`` (a ``RunRecord``) that differ
    from the run's ``config.json`` (a resumed run then no longer equals an uninterrupted
    one), or when that file cannot be read."""
    try:
        old = read_run(run_dir)
        if old is None:
            raise FileNotFoundError(f"no {CONFIG}")
    except (OSError, ValueError) as err:
        log.warning("the settings of the run cannot be compared (%s); %s is written anew",
                    err, CONFIG)
        return
    new, old = record.to_json(), old.to_json()

    def text(value):
        return json.dumps(value, sort_keys=True)
    changed = [f"{k} {text(new.get(k))} (was {text(old.get(k))})"
               for k in sorted(set(new) | set(old))
               if k not in RESUME_MAY_CHANGE and text(new.get(k)) != text(old.get(k))]
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


@dataclass(frozen=True)
class LaunchRecord:
    """What ``launch.json`` records of how a run was launched and where it stands, each
    field None until a launcher sets it (``experiments.local``, ``experiments.slurm``).

    ``state``: queued, running, done, failed or stopped. Locally: the ``host``, the
    launcher's process (``launcher_pid`` and its command line, to tell it from a later
    process of the same id), the training's process (``pid``, ``pid_cmdline``), the
    ``cores`` and ``gpus`` it owns and its ``command``. On Slurm: ``job_id``, ``submitted``,
    ``slurm_log`` and the ``attempts`` so far. Once it ends: ``finished`` and, for a
    failure, ``exit_status`` and the ``last_line`` of its log. Times are seconds since the
    epoch; ``updated``: the last write."""
    launcher: Optional[str] = None  # local or slurm
    state: Optional[str] = None
    host: Optional[str] = None
    launcher_pid: Optional[int] = None
    launcher_pid_cmdline: Optional[str] = None
    pid: Optional[int] = None
    pid_cmdline: Optional[str] = None
    cores: Optional[list] = None
    gpus: Optional[list] = None
    command: Optional[list] = None
    job_id: Optional[str] = None
    slurm_log: Optional[str] = None
    attempts: Optional[int] = None
    submitted: Optional[float] = None
    started: Optional[float] = None
    finished: Optional[float] = None
    exit_status: Optional[int] = None
    last_line: Optional[str] = None
    updated: Optional[float] = None

    @classmethod
    def from_json(cls, record):
        """The LaunchRecord of launch.json's object (keys it does not know are left out)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def to_json(self):
        """launch.json's object: the fields that are set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def read_launch(run_dir):
    """The run's ``LaunchRecord`` (every field None when it has no launch.json, or while
    the file is being replaced)."""
    try:
        record = read_json(os.path.join(run_dir, LAUNCH))
    except (OSError, ValueError):
        return LaunchRecord()
    return LaunchRecord.from_json(record) if isinstance(record, dict) else LaunchRecord()


def record_launch(run_dir, **fields):
    """Set ``fields`` of the run's launch record (TypeError for a name ``LaunchRecord``
    lacks; one writer at a time: whoever runs the run)."""
    os.makedirs(run_dir, exist_ok=True)
    record = dataclasses.replace(read_launch(run_dir), **fields, updated=time.time())
    write_json(os.path.join(run_dir, LAUNCH), record.to_json())


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


def experiment_run_dir(out_dir, row, seed, group=RUNS):
    """Where seed ``seed`` of the row named ``row`` of the experiment folder ``out_dir``
    trains: ``OUT/runs/<row>/seed<k>`` (``group`` PROBES: where a probe's measurement of
    it is kept, ``OUT/probe/<row>/seed<k>``)."""
    return os.path.join(out_dir, group, row, f"seed{seed}")
