"""Run directories: atomic files, metrics records, checkpoints and which one --resume picks."""
import json
import os

import numpy as np
import pytest

from common import checkpoint as ckpt
from common.files import atomic_path, write_json
from common.mx import mx


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
    found = ckpt.find_checkpoint(str(tmp_path))
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
    assert ckpt.find_checkpoint(str(tmp_path))["epoch"] == 2
    assert ckpt.find_checkpoint(str(tmp_path), 1)["epoch"] == 1
    with pytest.raises(ValueError, match="no complete checkpoint of epoch 5.*complete: 1, 2"):
        ckpt.find_checkpoint(str(tmp_path), 5)
    assert ckpt.find_checkpoint(str(tmp_path / "missing")) is None


def test_a_checkpoint_killed_before_its_manifest_is_ignored(tmp_path):
    save(tmp_path, 1)
    save(tmp_path, 2)
    (tmp_path / "model-0002.json").unlink()  # as if killed just before the manifest
    assert ckpt.find_checkpoint(str(tmp_path))["epoch"] == 1


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
    assert ckpt.find_checkpoint(str(tmp_path))["epoch"] == 1


def test_prune_keeps_the_newest(tmp_path):
    for epoch in (1, 2, 3):
        save(tmp_path, epoch)
    ckpt.prune_checkpoints(str(tmp_path), 2)
    assert sorted(ckpt.list_checkpoints(str(tmp_path))) == [2, 3]
    assert not (tmp_path / "model-0001.params").exists()
    assert (tmp_path / "model-symbol.json").exists()
    ckpt.prune_checkpoints(str(tmp_path), 0)
    assert sorted(ckpt.list_checkpoints(str(tmp_path))) == [2, 3]


def test_metrics_records_and_truncation(tmp_path):
    run = str(tmp_path)
    assert ckpt.read_metrics(run) == []
    for epoch in (1, 2, 3):
        ckpt.append_metrics(run, {"epoch": epoch, "train_loss": 1.0 / epoch})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert [r["epoch"] for r in ckpt.truncate_metrics(run, 2)] == [1, 2]
    assert [r["epoch"] for r in ckpt.read_metrics(run)] == [1, 2]


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
