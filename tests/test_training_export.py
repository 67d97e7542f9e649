"""training.export: a run's checkpoint written as an export folder (the MXNet files and
model.json; the ONNX half is in test_training_onnx_export.py), the command, a damaged
checkpoint skipped, a corrupt config named, errors in one line."""
import json
import logging
import os

import pytest

from common.cli import run_main
from common.files import file_sha256
from common.mx import mx
from tests.train_support import copy_run
from training.classify import INFO, PARAMS_FILE, SYMBOL_FILE
from training.export import export_model
from training.export import main as export_main

INFO_KEYS = {"sha256", "classes", "preprocess", "epoch", "run_dir", "num_layers", "unit",
             "shortcut", "projection", "bottleneck", "onnx", "dataset"}


def test_the_command_exports_the_chosen_epoch_and_prints_the_folder(run3, tmp_path, capsys):
    out = str(tmp_path / "deploy")
    assert export_main([run3[0], "--epoch", "2", "--out", out]) == 0
    assert capsys.readouterr().out == f"{out}\n"
    with open(os.path.join(out, INFO)) as f:
        info = json.load(f)
    assert set(info) == INFO_KEYS and info["epoch"] == 2 and len(info["classes"]) == 10
    assert (info["num_layers"], info["unit"]) == (8, "full_preact")
    assert os.path.normpath(os.path.join(out, info["run_dir"])) == os.path.abspath(run3[0])
    assert info["sha256"] == {name: file_sha256(os.path.join(out, name))
                              for name in (SYMBOL_FILE, PARAMS_FILE)}
    # the parameters as MXNet's checkpoints hold them, only those the inference net takes
    saved = mx.nd.load(os.path.join(out, PARAMS_FILE))
    sym = mx.sym.load(os.path.join(out, SYMBOL_FILE))
    assert {k.split(":", 1)[0] for k in saved} == {"arg", "aux"}
    assert {k[4:] for k in saved if k.startswith("arg:")} <= set(sym.list_arguments())
    assert {k[4:] for k in saved if k.startswith("aux:")} == set(sym.list_auxiliary_states())
    assert sym.list_outputs() == ["prob_output"]


def test_export_skips_a_damaged_checkpoint_and_names_a_corrupt_config(run3, tmp_path, caplog):
    out = copy_run(run3, tmp_path)
    with open(os.path.join(out, "model-0003.params"), "r+b") as f:
        f.truncate(1000)
    with caplog.at_level(logging.WARNING):
        model_dir = export_model(out)
    assert "skipping the checkpoint of epoch 3" in caplog.text
    with open(os.path.join(model_dir, "model.json")) as f:
        assert json.load(f)["epoch"] == 2
    config = os.path.join(out, "config.json")
    with open(config, "w") as f:
        f.write('{"preprocess": ')
    with pytest.raises(ValueError, match=f"^{config}: not valid JSON"):
        export_model(out)


@pytest.mark.parametrize("argv, message", [
    ([], "no complete checkpoint in {folder}"),
    (["--epoch", "x"], "argument --epoch: invalid int value: 'x'"),
])
def test_export_errors_are_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main(export_main, [str(tmp_path)] + argv, prog="training.export")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(("training.export: error: ", "python3 -m training.export: error: "))
    assert message.format(folder=tmp_path) in err[0]
