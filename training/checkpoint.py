"""Checkpoints, the part of the run folder that needs MXNet: writing the parameters,
optimizer states and symbol of an epoch, and reading them back checked.

The file names, the manifests and everything else of a run folder are in
``training.rundir``. Every file is written to a temporary name and renamed; the manifest
is written last, so a checkpoint without one is incomplete and ignored. The manifest
records the SHA-256 of the parameters and optimizer states, so that resume reads back a
checkpoint's files and skips, with a warning, one that was damaged later (a full disk, a
bad copy).
"""
import hashlib
import logging
import os
import pickle

from common.cli import mxnet_message
from common.files import atomic_path, file_sha256, write_json
from common.mx import mx
from training.rundir import checkpoint_files, find_checkpoint, scan_checkpoints

log = logging.getLogger(__name__)


def symbol_hash(symbol):
    """SHA-256 of the network's JSON: two runs share it only if their graphs are equal."""
    return hashlib.sha256(symbol.tojson().encode()).hexdigest()


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
    params = join_params(arg_params, aux_params)
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


def join_params(arg_params, aux_params):
    """One dict of a network's parameters as MXNet's checkpoints store them:
    ``arg:<name>`` for the learned ones, ``aux:<name>`` for the BatchNorm statistics."""
    params = {f"arg:{k}": v for k, v in arg_params.items()}
    params.update({f"aux:{k}": v for k, v in aux_params.items()})
    return params


def split_params(params):
    """(arg_params, aux_params) of a dict stored as ``join_params`` writes it."""
    arg = {k[4:]: v for k, v in params.items() if k.startswith("arg:")}
    aux = {k[4:]: v for k, v in params.items() if k.startswith("aux:")}
    return arg, aux


def load_params(run_dir, manifest):
    """(arg_params, aux_params) of a checkpoint; ValueError when the file is unreadable."""
    return read_params(os.path.join(run_dir, manifest["files"]["params"]))


def read_params(path):
    """(arg_params, aux_params) of a ``.params`` file in MXNet's checkpoint layout
    (``join_params``); ValueError when it is unreadable or holds no arg: parameters."""
    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ValueError(f"{os.path.basename(path)} is unreadable "
                         f"({mxnet_message(err)})") from None
    if not isinstance(loaded, dict) or not any(k.startswith("arg:") for k in loaded):
        raise ValueError(f"{os.path.basename(path)} holds no arg: parameters")
    return split_params(loaded)


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
