"""Run directories: atomic files, per-epoch metrics, checkpoints and their discovery.

A run directory holds ``config.json``, ``metrics.jsonl`` (one JSON object per epoch) and
checkpoints in MXNet's layout (``model-symbol.json``, ``model-0003.params`` loadable by
``mx.model.load_checkpoint``) plus the optimizer states ``model-0003.states`` and a
manifest ``model-0003.json``. Every file is written to a temporary name and renamed;
the manifest is written last, so a checkpoint without one is incomplete and ignored.
The manifest records the SHA-256 of the parameters and optimizer states, so that resume
reads back a checkpoint's files and skips, with a warning, one that was damaged later
(a full disk, a bad copy).
"""
import contextlib
import glob
import hashlib
import json
import logging
import os
import pickle
import re

from common.cli import mxnet_message
from common.files import atomic_path, file_sha256, read_json, write_json, write_text
from common.mx import mx

PREFIX = "model"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
MANIFEST_RE = re.compile(rf"^{PREFIX}-(\d{{4,}})\.json$")
log = logging.getLogger(__name__)


def symbol_hash(symbol):
    """SHA-256 of the network's JSON: two runs share it only if their graphs are equal."""
    return hashlib.sha256(symbol.tojson().encode()).hexdigest()


def read_metrics(run_dir):
    """The records of ``run_dir/metrics.jsonl`` ([] when there is none)."""
    path = os.path.join(run_dir, METRICS)
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{n}: corrupt record ({err.msg})") from None
    return records


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
        old = read_json(os.path.join(run_dir, CONFIG))
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


def checkpoint_files(epoch):
    """File names of the checkpoint after ``epoch`` epochs."""
    return {"symbol": f"{PREFIX}-symbol.json", "params": f"{PREFIX}-{epoch:04d}.params",
            "states": f"{PREFIX}-{epoch:04d}.states", "manifest": f"{PREFIX}-{epoch:04d}.json"}


def save_checkpoint(run_dir, epoch, iteration, symbol, arg_params, aux_params,
                    save_states=None, extra=None):
    """Write the checkpoint after ``epoch`` epochs (``iteration`` updates) and its manifest.

    ``save_states(path)`` writes the optimizer states (e.g. ``mod.save_optimizer_states``);
    ``extra`` goes into the manifest (seed, metrics...). Returns the manifest.
    """
    names = checkpoint_files(epoch)
    path = {k: os.path.join(run_dir, v) for k, v in names.items()}
    with atomic_path(path["symbol"]) as tmp:
        symbol.save(tmp)
    params = {f"arg:{k}": v for k, v in arg_params.items()}
    params.update({f"aux:{k}": v for k, v in aux_params.items()})
    sums = {}
    with atomic_path(path["params"]) as tmp:
        mx.nd.save(tmp, params)
        sums["params"] = file_sha256(tmp)
    files = {"symbol": names["symbol"], "params": names["params"]}
    if save_states is not None:
        with atomic_path(path["states"]) as tmp:
            save_states(tmp)
            sums["states"] = file_sha256(tmp)
        files["states"] = names["states"]
    manifest = dict(extra or {}, epoch=epoch, iteration=iteration, files=files,
                    symbol_sha256=symbol_hash(symbol), sha256=sums)
    write_json(path["manifest"], manifest)
    return manifest


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


def load_params(run_dir, manifest):
    """(arg_params, aux_params) of a checkpoint; ValueError when the file is unreadable."""
    path = os.path.join(run_dir, manifest["files"]["params"])
    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ValueError(f"{os.path.basename(path)} is unreadable "
                         f"({mxnet_message(err)})") from None
    if not isinstance(loaded, dict) or not any(k.startswith("arg:") for k in loaded):
        raise ValueError(f"{os.path.basename(path)} holds no arg: parameters")
    arg = {k[4:]: v for k, v in loaded.items() if k.startswith("arg:")}
    aux = {k[4:]: v for k, v in loaded.items() if k.startswith("aux:")}
    return arg, aux


def check_checkpoint(run_dir, manifest):
    """Read back the parameters and optimizer states of a checkpoint before they are used;
    ValueError naming the file that is truncated or corrupt.

    Files are compared with the checksums of the manifest; checkpoints written before
    checksums were recorded are checked by loading them (parameters with MXNet, optimizer
    states by unpickling them, as ``Module.load_optimizer_states`` does).
    """
    sums = manifest.get("sha256") or {}
    for key in ("params", "states"):
        name = manifest["files"].get(key)
        if not name:
            continue
        if key in sums:
            if file_sha256(os.path.join(run_dir, name)) != sums[key]:
                raise ValueError(f"{name} is truncated or corrupt (its SHA-256 differs from "
                                 "the one recorded when it was written)")
        elif key == "params":
            load_params(run_dir, manifest)
        else:
            try:
                with open(os.path.join(run_dir, name), "rb") as f:
                    pickle.loads(f.read())
            except Exception as err:  # anything a truncated pickle of NDArrays raises
                raise ValueError(f"{name} is unreadable ({type(err).__name__})") from None


def find_intact_checkpoint(run_dir, epoch=None):
    """The manifest of checkpoint ``epoch``, or of the newest intact one when None, once
    its files were read back (:func:`check_checkpoint`).

    Newer checkpoints that cannot be used (an unreadable manifest, a missing, truncated or
    corrupt file) are skipped, each with a warning that names it and says why. Returns
    None when ``run_dir`` holds no checkpoint; raises ValueError when none is intact or
    the checkpoint of ``epoch`` is not.
    """
    found, bad = scan_checkpoints(run_dir)
    if epoch is not None:
        if epoch in bad:
            raise ValueError(f"the checkpoint of epoch {epoch} in {run_dir} cannot be used: "
                             f"{bad[epoch]}")
        manifest = find_checkpoint(run_dir, epoch)
        try:
            check_checkpoint(run_dir, manifest)
        except ValueError as err:
            raise ValueError(f"the checkpoint of epoch {epoch} in {run_dir} cannot be used: "
                             f"{err}") from None
        return manifest
    skipped = []
    for newest in sorted(set(found) | set(bad), reverse=True):
        why = bad.get(newest)
        if why is None:
            try:
                check_checkpoint(run_dir, found[newest])
                return found[newest]
            except ValueError as err:
                why = str(err)
        log.warning("skipping the checkpoint of epoch %d in %s: %s", newest, run_dir, why)
        skipped.append(f"epoch {newest}: {why}")
    if skipped:
        raise ValueError(f"no intact checkpoint in {run_dir} ({'; '.join(skipped)})")
    return None


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
