"""Checkpoints (training/checkpoint.py): MXNet's layout, checksums, which one --resume picks
and what it skips."""
import hashlib
import json
import logging
import os
import pickle

import numpy as np
import pytest

from common.files import atomic_path, write_json
from common.mx import mx
from training import checkpoint as ckpt
from training import rundir


def tiny_symbol(hidden=4):
    x = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=hidden, name="fc")
    return mx.sym.SoftmaxOutput(x, name="softmax")


def params(value):
    return ({"fc_weight": mx.nd.full((4, 3), value), "fc_bias": mx.nd.zeros(4)},
            {"bn_moving_mean": mx.nd.full(2, value + 1)})


def save(run_dir, epoch, value=None, states=b"momentum"):
    arg, aux = params(epoch if value is None else value)

    def save_states(path):
        with open(path, "wb") as f:
            f.write(states)
    return ckpt.save_checkpoint(str(run_dir), epoch, 10 * epoch, tiny_symbol(), arg, aux,
                                save_states, extra={"seed": 3})


def test_checkpoint_round_trip_in_mxnet_layout(tmp_path):
    manifest = save(tmp_path, 2)
    assert manifest["epoch"] == 2 and manifest["iteration"] == 20 and manifest["seed"] == 3
    assert manifest["symbol_sha256"] == ckpt.symbol_hash(tiny_symbol())
    found = rundir.find_checkpoint(str(tmp_path))
    assert found == json.loads((tmp_path / "model-0002.json").read_text())
    arg, aux = ckpt.load_params(str(tmp_path), found)
    np.testing.assert_array_equal(arg["fc_weight"].asnumpy(), np.full((4, 3), 2.0))
    np.testing.assert_array_equal(aux["bn_moving_mean"].asnumpy(), [3.0, 3.0])
    # MXNet's own loader reads it too
    sym, arg2, aux2 = mx.model.load_checkpoint(str(tmp_path / "model"), 2)
    assert sym.tojson() == tiny_symbol().tojson() and set(arg2) == {"fc_weight", "fc_bias"}
    assert (tmp_path / "model-0002.states").read_bytes() == b"momentum"
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_newest_complete_checkpoint_is_found(tmp_path):
    save(tmp_path, 1)
    save(tmp_path, 2)
    assert rundir.find_checkpoint(str(tmp_path))["epoch"] == 2
    assert rundir.find_checkpoint(str(tmp_path), 1)["epoch"] == 1
    with pytest.raises(ValueError, match="no complete checkpoint of epoch 5.*complete: 1, 2"):
        rundir.find_checkpoint(str(tmp_path), 5)
    assert rundir.find_checkpoint(str(tmp_path / "missing")) is None


def test_a_checkpoint_killed_before_its_manifest_is_ignored(tmp_path):
    save(tmp_path, 1)
    save(tmp_path, 2)
    (tmp_path / "model-0002.json").unlink()  # as if killed just before the manifest
    assert rundir.find_checkpoint(str(tmp_path))["epoch"] == 1


@pytest.mark.parametrize("damage", ["truncated manifest", "missing params", "wrong epoch"])
def test_damaged_checkpoints_are_ignored(tmp_path, damage):
    save(tmp_path, 1)
    save(tmp_path, 2)
    manifest = tmp_path / "model-0002.json"
    if damage == "truncated manifest":
        manifest.write_text(manifest.read_text()[:20])
    elif damage == "missing params":
        (tmp_path / "model-0002.params").unlink()
    else:
        manifest.write_text(manifest.read_text().replace('"epoch": 2', '"epoch": 7'))
    assert rundir.find_checkpoint(str(tmp_path))["epoch"] == 1


def test_prune_keeps_the_newest(tmp_path):
    for epoch in (1, 2, 3):
        save(tmp_path, epoch)
    rundir.prune_checkpoints(str(tmp_path), 2)
    assert sorted(rundir.list_checkpoints(str(tmp_path))) == [2, 3]
    assert not (tmp_path / "model-0001.params").exists()
    assert (tmp_path / "model-symbol.json").exists()
    rundir.prune_checkpoints(str(tmp_path), 0)
    assert sorted(rundir.list_checkpoints(str(tmp_path))) == [2, 3]


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "config.json"
    write_json(str(path), {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(str(path)) as tmp:
            with open(tmp, "w") as f:
                f.write("{half")
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["config.json"]


def test_symbol_hash_tells_networks_apart():
    assert ckpt.symbol_hash(tiny_symbol(4)) == ckpt.symbol_hash(tiny_symbol(4))
    assert ckpt.symbol_hash(tiny_symbol(4)) != ckpt.symbol_hash(tiny_symbol(5))


# --- what --resume may load: files read back before a checkpoint is chosen -------------

def damage(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif how == "flipped":  # same length, the last bytes changed: MXNet would load it
        path.write_bytes(raw[:-8] + bytes(b ^ 0xFF for b in raw[-8:]))
    else:
        path.write_bytes(b"")


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_manifest_records_the_checksums_of_params_and_states(tmp_path):
    manifest = save(tmp_path, 1)
    for key in ("params", "states"):
        raw = (tmp_path / manifest["files"][key]).read_bytes()
        assert manifest["sha256"][key] == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("name", ["model-0002.params", "model-0002.states"])
@pytest.mark.parametrize("how", ["truncated", "flipped", "empty"])
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog, name, how):
    save(tmp_path, 1)
    save(tmp_path, 2)
    damage(tmp_path / name, how)
    assert rundir.find_checkpoint(str(tmp_path))["epoch"] == 2  # by its manifest, complete
    with caplog.at_level(logging.WARNING):
        assert ckpt.find_intact_checkpoint(str(tmp_path))["epoch"] == 1
    assert warnings_of(caplog) == [
        f"skipping the checkpoint of epoch 2 in {tmp_path}: {name} is truncated or corrupt "
        "(its SHA-256 differs from the one recorded when it was written)"]


def test_an_unreadable_manifest_is_skipped_with_a_warning(tmp_path, caplog):
    save(tmp_path, 1)
    save(tmp_path, 2)
    manifest = tmp_path / "model-0002.json"
    manifest.write_text(manifest.read_text()[:30])
    with caplog.at_level(logging.WARNING):
        assert ckpt.find_intact_checkpoint(str(tmp_path))["epoch"] == 1
    [warning] = warnings_of(caplog)
    assert warning.startswith(f"skipping the checkpoint of epoch 2 in {tmp_path}: "
                              "unreadable manifest model-0002.json (JSONDecodeError")


def test_no_intact_checkpoint_is_a_one_line_error(tmp_path, caplog):
    save(tmp_path, 1)
    save(tmp_path, 2)
    damage(tmp_path / "model-0002.params", "truncated")
    damage(tmp_path / "model-0001.states", "flipped")
    with pytest.raises(ValueError, match=r"no intact checkpoint in .*\(epoch 2: model-0002\."
                       r"params is truncated .*; epoch 1: model-0001\.states is") as err:
        ckpt.find_intact_checkpoint(str(tmp_path))
    assert "\n" not in str(err.value) and len(warnings_of(caplog)) == 2
    assert ckpt.find_intact_checkpoint(str(tmp_path / "empty")) is None


def test_a_requested_epoch_is_never_replaced_by_another(tmp_path):
    save(tmp_path, 1)
    save(tmp_path, 2)
    damage(tmp_path / "model-0001.params", "flipped")
    assert ckpt.find_intact_checkpoint(str(tmp_path), 2)["epoch"] == 2
    with pytest.raises(ValueError, match="the checkpoint of epoch 1 in .* cannot be used: "
                       "model-0001.params is truncated or corrupt"):
        ckpt.find_intact_checkpoint(str(tmp_path), 1)
    (tmp_path / "model-0002.json").write_text("{")
    with pytest.raises(ValueError, match="epoch 2 .* cannot be used: unreadable manifest"):
        ckpt.find_intact_checkpoint(str(tmp_path), 2)


def test_checkpoints_without_checksums_are_checked_by_loading(tmp_path, caplog):
    """Manifests written before checksums were recorded: parameters are loaded with MXNet,
    optimizer states unpickled."""
    for epoch in (1, 2):
        save(tmp_path, epoch, states=pickle.dumps({0: (mx.nd.ones(3), None)}))
        path = tmp_path / f"model-{epoch:04d}.json"
        manifest = json.loads(path.read_text())
        del manifest["sha256"]
        path.write_text(json.dumps(manifest))
    assert ckpt.find_intact_checkpoint(str(tmp_path))["epoch"] == 2
    damage(tmp_path / "model-0002.states", "truncated")
    damage(tmp_path / "model-0001.params", "truncated")
    with pytest.raises(ValueError) as err:
        ckpt.find_intact_checkpoint(str(tmp_path))
    assert "epoch 2: model-0002.states is unreadable (" in str(err.value)
    assert "epoch 1: model-0001.params is unreadable (" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_params_file_without_arg_parameters_is_refused(tmp_path):
    """A file MXNet loads but that is not a checkpoint's (a list, no 'arg:' names)."""
    manifest = save(tmp_path, 1)
    mx.nd.save(str(tmp_path / "model-0001.params"), [mx.nd.ones(3)])
    with pytest.raises(ValueError, match="^model-0001.params holds no arg: parameters$"):
        ckpt.load_params(str(tmp_path), manifest)
    del manifest["sha256"]  # a manifest from before the checksums: checked by loading
    with pytest.raises(ValueError, match="model-0001.params holds no arg: parameters"):
        ckpt.check_checkpoint(str(tmp_path), manifest)
