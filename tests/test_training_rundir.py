"""The run folder's one owner (training/rundir.py), without MXNet: metrics records and the
one tolerant reader, config.json in the typed form whichever version wrote it,
manifests, what a launcher records, the plan."""
import json
import logging
import os
import subprocess
import sys

import pytest

from training import rundir
from train_support import ROOT


def test_metrics_records_and_truncation(tmp_path):
    run = str(tmp_path)
    assert rundir.read_metrics(run) == []
    for epoch in (1, 2, 3):
        rundir.append_metrics(run, {"epoch": epoch, "train_loss": 1.0 / epoch})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert [r["epoch"] for r in rundir.truncate_metrics(run, 2)] == [1, 2]
    assert [r["epoch"] for r in rundir.read_metrics(run)] == [1, 2]


def test_the_reader_skips_a_bad_line_and_a_half_written_last_one_and_says_so(tmp_path,
                                                                             caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2, "tr\n{"epoch": 3}\n{"epoch": 4, "it')
    with caplog.at_level(logging.WARNING):
        assert [r["epoch"] for r in rundir.read_metrics(str(tmp_path))] == [1, 3]
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:2: not a JSON record; line skipped",
        f"{path}:4: partly written last line skipped"]


def test_required_metrics_fail_in_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        rundir.read_metrics(str(tmp_path / "missing"), required=True)
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl in run directory"):
        rundir.read_metrics(str(tmp_path), required=True)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "tr')
    with pytest.raises(ValueError, match="no complete epoch recorded yet"):
        rundir.read_metrics(str(tmp_path), required=True)


OLD_CONFIG = {"image_shape": "3,32,32", "bottleneck": "no", "shortcut_param": ["scale=0.5"],
              "gpus": None, "lr_step_iters": "32000,48000", "lr_step_epochs": None,
              "num_layers": 20}


def write_old_config(run_dir):
    with open(os.path.join(run_dir, rundir.CONFIG), "w") as f:
        json.dump(OLD_CONFIG, f)


def test_config_is_read_typed_whichever_version_wrote_it(tmp_path):
    write_old_config(str(tmp_path))
    config = rundir.read_config(str(tmp_path))
    flags = {"image_shape": [3, 32, 32], "bottleneck": False,
             "shortcut_param": {"scale": 0.5}, "gpus": [],
             "lr_step_iters": [32000, 48000], "lr_step_epochs": [], "num_layers": 20}
    assert config == dict(flags, evaluated="test", contexts=[], rank=0, num_workers=1,
                          lr_steps_iterations=[])
    record = rundir.read_run(str(tmp_path))
    assert record.flags == flags and record.label() == "ResNet-20 scale=0.5"
    assert rundir.read_config(str(tmp_path / "none")) == {}
    assert rundir.read_run(str(tmp_path / "none")) is None
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match=f"^{tmp_path / 'config.json'}: not valid JSON"):
        rundir.read_config(str(tmp_path))


def test_resuming_a_run_of_the_old_format_warns_only_about_real_changes(tmp_path, caplog):
    write_old_config(str(tmp_path))
    flags = rundir.read_run(str(tmp_path)).flags
    same = rundir.RunRecord(dict(flags, num_iters=500))  # may change on resume
    with caplog.at_level(logging.WARNING):
        rundir.warn_config_changes(str(tmp_path), same)
        assert not caplog.records
        rundir.warn_config_changes(str(tmp_path), rundir.RunRecord(
            dict(flags, num_iters=500, shortcut_param={"scale": 0.8})))
    assert caplog.records[0].getMessage().endswith(
        'settings that differ from its config.json: shortcut_param {"scale": 0.8} '
        '(was {"scale": 0.5})')


def manifest(run_dir, epoch, files=("params", "states")):
    names = rundir.checkpoint_files(epoch)
    for key in ("symbol",) + tuple(files):
        (run_dir / names[key]).write_bytes(b"x")
    (run_dir / names["manifest"]).write_text(json.dumps(
        {"epoch": epoch, "files": {k: names[k] for k in ("symbol",) + tuple(files)}}))


def test_manifests_name_the_complete_checkpoints(tmp_path):
    for epoch in (1, 2, 3):
        manifest(tmp_path, epoch)
    os.remove(tmp_path / "model-0003.states")  # incomplete: a file it names is missing
    (tmp_path / "model-0004.json").write_text("{")  # unreadable
    found, bad = rundir.scan_checkpoints(str(tmp_path))
    assert sorted(found) == [1, 2]
    assert bad == {3: "model-0003.states is missing",
                   4: "unreadable manifest model-0004.json (JSONDecodeError: Expecting "
                      "property name enclosed in double quotes: line 1 column 2 (char 1))"}
    assert rundir.find_checkpoint(str(tmp_path))["epoch"] == 2
    with pytest.raises(ValueError, match="no complete checkpoint of epoch 3 .*complete: 1, 2"):
        rundir.find_checkpoint(str(tmp_path), 3)
    rundir.prune_checkpoints(str(tmp_path), 1)
    assert sorted(rundir.list_checkpoints(str(tmp_path))) == [2]
    assert (tmp_path / "model-symbol.json").exists()


def test_what_a_launcher_records(tmp_path):
    run = str(tmp_path / "run")
    assert not rundir.has_started(run) and not rundir.is_done(run)
    assert rundir.read_launch(run) == rundir.LaunchRecord() and rundir.last_line(run) == ""
    rundir.record_launch(run, state="queued")
    rundir.record_launch(run, state="running", pid=12)
    assert rundir.read_launch(run).state == "running" and rundir.read_launch(run).pid == 12
    with open(os.path.join(run, rundir.LAUNCH)) as f:
        assert {k: v for k, v in json.load(f).items() if k != "updated"} == \
            {"state": "running", "pid": 12}
    with pytest.raises(TypeError):
        rundir.record_launch(run, colour="blue")  # not a field of the record
    with open(rundir.log_path(run), "w") as f:
        f.write("epoch 1\r\nepoch 2 batch 3\n\n")
    assert rundir.last_line(run) == "epoch 2 batch 3"
    rundir.write_metrics(run, [])
    rundir.mark_done(run, ["-m", "train_cifar"])
    assert rundir.has_started(run) and rundir.is_done(run)
    rundir.write_plan(str(tmp_path), {"runs": ["run"]})
    assert rundir.read_plan(str(tmp_path)) == {"runs": ["run"]}
    assert rundir.read_plan(str(tmp_path / "run")) is None


def test_the_run_folder_imports_no_mxnet():
    code = ("import sys; import training.rundir, plots, experiments.status; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mxnet'))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_run_record_round_trips_and_says_what_its_error_measures(tmp_path):
    pre = rundir.Preprocess.from_json({"image_shape": [3, 32, 32], "resize": 32, "crop": 32,
                                       "mean": [125.3, 123.0, 113.9], "std": [63.0] * 3})
    assert pre.image_shape == (3, 32, 32) and pre.mean_image is None
    assert "mean_image" not in pre.to_json()
    record = rundir.RunRecord({"num_layers": 56, "unit": "original", "shortcut": "identity",
                               "validation_images": 1000}, evaluated="validation",
                              preprocess=pre, classes=("cat", "dog"), planned_epochs=3)
    rundir.write_config(str(tmp_path), record)
    assert rundir.read_run(str(tmp_path)) == record
    assert record.label() == "ResNet-56 original identity"
    with pytest.raises(ValueError, match="preprocess: unknown flip"):
        rundir.Preprocess.from_json(dict(pre.to_json(), flip=True))
    with pytest.raises(ValueError, match="evaluated must be one of test, validation"):
        rundir.RunRecord({}, evaluated="train")


@pytest.mark.parametrize("flags, evaluated", [
    ({"dataset": "cifar10"}, "test"), ({"validation_split": True}, "validation"),
    ({"validation_images": 1000}, "validation"), ({"data_nthreads": 4}, "validation")])
def test_a_record_written_before_it_said_what_it_evaluates_says_it_by_its_flags(
        tmp_path, flags, evaluated):
    with open(tmp_path / rundir.CONFIG, "w") as f:
        json.dump(flags, f)
    assert rundir.read_run(str(tmp_path)).evaluated == evaluated
