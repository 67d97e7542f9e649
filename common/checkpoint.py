"""Run directories: atomic files, per-epoch metrics, checkpoints and their discovery.

A run directory holds ``config.json``, ``metrics.jsonl`` (one JSON object per epoch) and
checkpoints in MXNet's layout (``model-symbol.json``, ``model-0003.params`` loadable by
``mx.model.load_checkpoint``) plus the optimizer states ``model-0003.states`` and a
manifest ``model-0003.json``. Every file is written to a temporary name and renamed;
the manifest is written last, so a checkpoint without one is incomplete and ignored.
"""
import contextlib
import glob
import hashlib
import json
import os
import re

from common.files import atomic_path, write_json, write_text
from common.mx import mx

PREFIX = "model"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
MANIFEST_RE = re.compile(rf"^{PREFIX}-(\d{{4,}})\.json$")


def symbol_hash(symbol):
    """SHA-256 of the network's JSON: two runs share it only if their graphs are equal."""
    return hashlib.sha256(symbol.tojson().encode()).hexdigest()


def read_metrics(run_dir):
    """The records of ``run_dir/metrics.jsonl`` ([] when there is none)."""
    path = os.path.join(run_dir, METRICS)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        try:
            return [json.loads(line) for line in f if line.strip()]
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is corrupt: {err}") from None


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
    with atomic_path(path["params"]) as tmp:
        mx.nd.save(tmp, params)
    files = {"symbol": names["symbol"], "params": names["params"]}
    if save_states is not None:
        with atomic_path(path["states"]) as tmp:
            save_states(tmp)
        files["states"] = names["states"]
    manifest = dict(extra or {}, epoch=epoch, iteration=iteration, files=files,
                    symbol_sha256=symbol_hash(symbol))
    write_json(path["manifest"], manifest)
    return manifest


def read_manifest(path):
    """The manifest at ``path`` if it and the files it names are complete, else None."""
    try:
        with open(path) as f:
            manifest = json.load(f)
        run_dir = os.path.dirname(path)
        if all(os.path.isfile(os.path.join(run_dir, f)) for f in manifest["files"].values()):
            return manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def list_checkpoints(run_dir):
    """Complete checkpoints of ``run_dir`` as {epoch: manifest}."""
    found = {}
    for path in glob.glob(os.path.join(glob.escape(run_dir), f"{PREFIX}-*.json")):
        match = MANIFEST_RE.match(os.path.basename(path))
        manifest = read_manifest(path) if match else None
        if manifest is not None and manifest.get("epoch") == int(match.group(1)):
            found[manifest["epoch"]] = manifest
    return found


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
    """(arg_params, aux_params) of a checkpoint."""
    path = os.path.join(run_dir, manifest["files"]["params"])
    loaded = mx.nd.load(path)
    arg = {k[4:]: v for k, v in loaded.items() if k.startswith("arg:")}
    aux = {k[4:]: v for k, v in loaded.items() if k.startswith("aux:")}
    return arg, aux


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
