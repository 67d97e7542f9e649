"""train_cifar.py end to end on a generated CIFAR-10 folder (and, where it exists, on images
of the real sample): the loss drops, the run directory is complete, kill -9 + --resume equals
an uninterrupted run, NaN stops the run, bad flags fail in one line, the synthetic
benchmark; flags that contradict the data, damaged checkpoints, a locked run; the curves a
run draws. Export and classification of the run: test_training_export.py,
test_training_classify.py."""
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import train_cifar
from common.cli import run_main
from common.mx import mx
from tests.train_support import ROOT, TINY, copy_run, hold_in_child, run_script, small_cifar
from training import checkpoint as ckpt
from training import rundir

TIMINGS = ("epoch_seconds", "samples_per_sec")


@pytest.fixture(scope="module")
def cifar(generated_cifar10):
    """200 training images (5 x 40) and 60 test images."""
    return generated_cifar10


def without_timings(records):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in records]


def fail(argv, capsys):
    """Run train_cifar.py's main as the script does; returns its one-line error."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(train_cifar.main, argv, prog="train_cifar.py")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train_cifar.py: error: ")
    return err[-1]


def test_short_run_lowers_the_loss_and_writes_the_run_directory(run3):
    out, records = run3
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["iteration"] for r in records] == [6, 12, 18]  # 200 images / 32, last dropped
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert records[-1]["train_loss"] < np.log(10)  # better than chance
    assert without_timings(rundir.read_metrics(out)) == without_timings(records)
    for r in records:
        assert set(r) == {"epoch", "iteration", "lr", "train_loss", "train_acc", "val_loss",
                          "val_acc", "epoch_seconds", "samples_per_sec"}
        assert r["lr"] == 0.1 and 0 <= r["val_acc"] <= 1 and r["samples_per_sec"] > 0
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    assert (config["num_layers"], config["unit"], config["optimizer"]) == (8, "full_preact", "nag")
    assert config["batches_per_epoch"] == 6 and config["lr_steps_iterations"] == [32000, 48000]
    assert len(config["classes"]) == 10 and len(config["preprocess"]["mean"]) == 3
    # --keep-checkpoints 2: epochs 2 and 3 remain, loadable by MXNet
    assert sorted(rundir.list_checkpoints(out)) == [2, 3]
    sym, arg, aux = mx.model.load_checkpoint(os.path.join(out, "model"), 3)
    assert "stage1_unit1_conv1_weight" in arg and aux
    # the network as built, not the fused one trained on the CPU (symbols.fusion)
    assert "BatchNormWithReLU" not in sym.tojson() and "BatchNorm" in sym.tojson()


def test_short_run_on_real_images_lowers_the_loss(shared_cifar10, tmp_path):
    """Real-image layer: the same 3-epoch run on 200 images of the real sample."""
    cifar = small_cifar(shared_cifar10, tmp_path / "cifar")
    records = train_cifar.main(["--data-dir", cifar, "--output-dir", str(tmp_path / "run"),
                                "--num-epochs", "3"] + TINY)
    assert records[-1]["train_loss"] < records[0]["train_loss"] < 2 * np.log(10)
    assert records[-1]["train_loss"] < np.log(10)


def test_kill_9_then_resume_equals_an_uninterrupted_run(cifar, tmp_path):
    flags = ["--data-dir", cifar, "--num-epochs", "2", "--disp-batches", "1"] + TINY
    straight = train_cifar.main(flags + ["--output-dir", str(tmp_path / "a")])
    out = str(tmp_path / "b")
    proc = subprocess.Popen([sys.executable, "train_cifar.py", "--output-dir", out] + flags,
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    for line in proc.stderr:  # one log line per batch; kill in the middle of epoch 2
        if "epoch 2 batch 3/6" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert [r["epoch"] for r in rundir.read_metrics(out)] == [1]
    resumed = train_cifar.main(flags + ["--output-dir", out, "--resume"])
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert without_timings(resumed) == without_timings(straight)
    assert without_timings(rundir.read_metrics(out)) == without_timings(straight)


def test_num_iters_stops_inside_the_last_epoch_and_resumes_to_the_same_end(cifar, tmp_path):
    """--num-iters 14 of 6-batch epochs: two whole epochs and 2 batches of a third, as
    the papers stop CIFAR at 64k iterations; resumed from epoch 2, the same records."""
    flags = ["--data-dir", cifar, "--num-iters", "14", "--lr-step-iters", "13"] + TINY
    records = train_cifar.main(flags + ["--output-dir", str(tmp_path / "a")])
    assert [r["iteration"] for r in records] == [6, 12, 14]
    assert records[-1]["lr"] == pytest.approx(0.01)
    with open(os.path.join(tmp_path / "a", "config.json")) as f:
        config = json.load(f)
    assert (config["planned_epochs"], config["planned_iterations"]) == (3, 14)
    out = str(tmp_path / "b")
    shutil.copytree(tmp_path / "a", out)
    os.remove(os.path.join(out, rundir.checkpoint_files(3)["manifest"]))
    resumed = train_cifar.main(flags + ["--output-dir", out, "--resume"])
    assert without_timings(resumed) == without_timings(records)


def test_a_run_whose_config_json_holds_the_flags_as_text_resumes_the_same(run3, cifar,
                                                                          tmp_path):
    """config.json written before the flags were typed ("3,32,32", "32000,48000", null
    GPUs): --resume repeats epoch 3 exactly and writes the typed values."""
    out = copy_run(run3, tmp_path)
    os.remove(os.path.join(out, rundir.checkpoint_files(3)["manifest"]))
    path = os.path.join(out, "config.json")
    with open(path) as f:
        config = json.load(f)
    assert (config["image_shape"], config["lr_step_iters"]) == ([3, 32, 32], [32000, 48000])
    assert (config["gpus"], config["shortcut_param"], config["bottleneck"]) == ([], {}, None)
    config.update(image_shape="3,32,32", lr_step_iters="32000,48000", lr_step_epochs=None,
                  gpus=None, shortcut_param=[])
    with open(path, "w") as f:
        json.dump(config, f)
    records = train_cifar.main(["--data-dir", cifar, "--output-dir", out, "--resume",
                                "--num-epochs", "3", "--disp-batches", "2"] + TINY)
    assert without_timings(records) == without_timings(run3[1])
    with open(path) as f:
        assert json.load(f)["image_shape"] == [3, 32, 32]


def test_resume_refuses_a_changed_network(run3, cifar, tmp_path, capsys):
    out = copy_run(run3, tmp_path)
    argv = ["--data-dir", cifar, "--output-dir", out, "--resume", "--num-epochs", "4"]
    err = fail(argv + TINY[2:] + ["--num-layers", "14"], capsys)
    assert "different network" in err


def test_an_existing_run_is_not_overwritten(run3, cifar, tmp_path, capsys):
    out = copy_run(run3, tmp_path)
    err = fail(["--data-dir", cifar, "--output-dir", out, "--num-epochs", "1"] + TINY, capsys)
    assert "--resume" in err


def test_nan_loss_stops_with_the_last_good_checkpoint_kept(run3, cifar, tmp_path, capsys):
    out = copy_run(run3, tmp_path)
    err = fail(["--data-dir", cifar, "--output-dir", out, "--resume", "--num-epochs", "5",
                "--lr", "1e30", "--disp-batches", "1"] + TINY, capsys)
    assert "loss is nan" in err and "epoch 4" in err and "checkpoint" in err
    assert [r["epoch"] for r in rundir.read_metrics(out)] == [1, 2, 3]
    assert rundir.find_checkpoint(out)["epoch"] == 3


@pytest.mark.parametrize("argv,message", [
    (["--num-layers", "21"], "6n+2"),
    (["--num-layers", "8", "--lr", "-1"], "--lr"),
    (["--num-layers", "8", "--unit", "nonsense"], "invalid choice"),
    (["--num-layers", "8", "--num-epochs", "x"], "invalid int"),
    (["--num-layers", "8", "--gpus", "0"], "GPU"),
    (["--num-layers", "8", "--dtype", "float16"], "float16 needs GPU"),
    (["--num-layers", "8", "--cpus", "2", "--gpus", "0"], "either --gpus or --cpus"),
    (["--num-layers", "8", "--kv-store", "dist_sync"], "launcher"),
    (["--num-layers", "8", "--shortcut-param", "scale"], "NAME=VALUE"),
    (["--num-layers", "8", "--top-k", "1"], "--top-k"),
    (["--num-layers", "8", "--image-shape", "3,64,64"], "CIFAR images are 3,32,32"),
])
def test_bad_flags_fail_in_one_line(argv, message, capsys, tmp_path):
    err = fail(["--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "r")] + argv, capsys)
    assert message in err


def test_missing_data_fails_in_one_line_from_the_command_line(tmp_path):
    result = run_script(["train_cifar.py", "--data-dir", str(tmp_path / "none"), "--output-dir",
                         str(tmp_path / "r"), "--num-layers", "20", "--num-epochs", "1"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("train_cifar.py: error: ")
    assert "Traceback" not in result.stderr


def test_benchmark_trains_on_synthetic_data(capsys):
    result = train_cifar.main(["--benchmark", "--num-layers", "8", "--batch-size", "4",
                               "--benchmark-batches", "2"])
    assert result["images_per_sec"] > 0 and result["peak_rss_mib"] > 0
    assert "images/s" in capsys.readouterr().out


def test_load_epoch_repeats_the_later_epochs_exactly(run3, cifar, tmp_path):
    out = copy_run(run3, tmp_path)  # holds the checkpoints of epochs 2 and 3
    records = train_cifar.main(["--data-dir", cifar, "--output-dir", out, "--load-epoch", "2",
                                "--num-epochs", "3", "--disp-batches", "2"] + TINY)
    assert without_timings(records) == without_timings(run3[1])


# --- flags that contradict the data, damaged checkpoints, two processes in one run ------

def snapshot(folder):
    """Every file under ``folder`` with its bytes and modification time."""
    found = {}
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = (f.read(), os.stat(path).st_mtime_ns)
    return found


@pytest.mark.parametrize("classes, message", [
    ("5", "--num-classes 5: the labels of {folder} range over 0..9, so the network needs at "
          "least 10 classes"),
    ("100", "--num-classes 100: {folder} has 10 classes (labels 0..9)")])
def test_num_classes_that_contradict_the_labels_stop_before_training(cifar, tmp_path, capsys,
                                                                     classes, message):
    out = str(tmp_path / "run")
    err = fail(["--data-dir", cifar, "--output-dir", out, "--num-classes", classes] + TINY,
               capsys)
    assert err == "train_cifar.py: error: " + message.format(folder=cifar)
    assert os.listdir(out) == [".lock"]  # no metrics, no config, no checkpoint


def test_resume_skips_a_truncated_checkpoint_and_repeats_its_epoch(run3, cifar, tmp_path,
                                                                   caplog):
    out = copy_run(run3, tmp_path)  # epochs 2 and 3
    params = os.path.join(out, "model-0003.params")
    with open(params, "r+b") as f:
        f.truncate(os.path.getsize(params) // 3)
    with caplog.at_level(logging.WARNING):
        records = train_cifar.main(["--data-dir", cifar, "--output-dir", out, "--resume",
                                    "--num-epochs", "3", "--disp-batches", "2"] + TINY)
    assert f"skipping the checkpoint of epoch 3 in {out}: model-0003.params is truncated or " \
        "corrupt" in caplog.text
    assert without_timings(records) == without_timings(run3[1])  # epoch 3 again, exactly
    assert ckpt.find_intact_checkpoint(out)["epoch"] == 3


def test_resume_with_no_intact_checkpoint_stops_in_one_line(run3, cifar, tmp_path, capsys):
    out = copy_run(run3, tmp_path)
    for name in ("model-0002.states", "model-0003.params"):
        with open(os.path.join(out, name), "r+b") as f:
            f.truncate(100)
    before = snapshot(out)
    err = fail(["--data-dir", cifar, "--output-dir", out, "--resume", "--num-epochs", "4"]
               + TINY, capsys)
    assert f"no intact checkpoint in {out} (epoch 3: model-0003.params is truncated" in err
    assert "epoch 2: model-0002.states is truncated" in err
    after = snapshot(out)
    assert after.pop(".lock")[0].split()[0] == str(os.getpid()).encode()
    before.pop(".lock", None)
    assert after == before


def test_a_second_training_into_a_running_directory_stops_at_once(run3, cifar, tmp_path,
                                                                  capsys):
    out = copy_run(run3, tmp_path)
    first = subprocess.Popen([sys.executable, "train_cifar.py", "--data-dir", cifar,
                              "--output-dir", out, "--resume", "--num-epochs", "50",
                              "--disp-batches", "1"] + TINY,
                             cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stderr:  # training has begun: the lock is held
            if "epoch 4 batch" in line:
                break
        second = run_script(["train_cifar.py", "--data-dir", cifar, "--output-dir", out,
                             "--resume", "--num-epochs", "50"] + TINY)
        assert first.poll() is None
    finally:
        first.kill()
        first.wait(timeout=30)
        first.stderr.close()
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"train_cifar.py: error: {out} is in use by process {first.pid} on "
        f"{socket.gethostname()} (it holds {out}/.lock); wait for it to end or choose "
        "another folder (RESNET_TRACEBACK=1 shows the traceback)"]
    # the killed first process left no stale lock
    err = fail(["--data-dir", cifar, "--output-dir", out, "--num-epochs", "1"] + TINY, capsys)
    assert "already holds checkpoints" in err


def test_a_locked_run_directory_is_left_untouched(run3, cifar, tmp_path, capsys):
    out = copy_run(run3, tmp_path)
    holder = hold_in_child(out)
    try:
        before = snapshot(out)
        err = fail(["--data-dir", cifar, "--output-dir", out, "--resume", "--num-epochs", "4"]
                   + TINY, capsys)
        assert f"is in use by process {holder.pid} on {socket.gethostname()}" in err
        assert snapshot(out) == before
    finally:
        holder.kill()
        holder.wait(timeout=30)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "cifar100"], "no CIFAR-100 data in {cifar}"),
    (["--num-examples", "500"], "num_examples must be in 1..200, got 500"),
    (["--validation-images", "200"], "cannot hold out 200 of 200 images"),
    (["--batch-size", "512"], "200 images in 1 part(s) do not fill one batch of 512"),
])
def test_data_flags_that_contradict_the_data_fail_in_one_line(cifar, tmp_path, capsys, argv,
                                                              message):
    err = fail(["--data-dir", cifar, "--output-dir", str(tmp_path / "r"), "--num-epochs", "1"]
               + TINY + argv, capsys)
    assert message.format(cifar=cifar) in err


def test_resume_with_changed_settings_warns_naming_them(run3, cifar, tmp_path, caplog):
    out = copy_run(run3, tmp_path)
    with caplog.at_level(logging.WARNING):
        train_cifar.main(["--data-dir", cifar, "--output-dir", out, "--resume", "--num-epochs",
                          "3", "--seed", "1", "--wd", "0.001", "--disp-batches", "1"] + TINY)
    [warning] = [r.getMessage() for r in caplog.records if "differ" in r.getMessage()]
    assert warning == (f"resuming {out} with settings that differ from its config.json: "
                       "seed 1 (was 0), wd 0.001 (was 0.0001)")


def test_a_run_draws_its_curves_and_a_plotting_failure_only_warns(cifar, tmp_path, caplog,
                                                                  monkeypatch):
    flags = ["--data-dir", cifar, "--num-epochs", "1"] + [f for f in TINY if f != "--no-plots"]
    out = str(tmp_path / "drawn")
    train_cifar.main(flags + ["--output-dir", out])
    for ext in ("png", "pdf"):
        assert os.path.getsize(os.path.join(out, f"curves.{ext}")) > 1000
    import plots.curves

    def broken(*args, **kwargs):
        raise RuntimeError("no canvas")
    monkeypatch.setattr(plots.curves, "plot_runs", broken)
    out = str(tmp_path / "not_drawn")
    with caplog.at_level(logging.WARNING):
        records = train_cifar.main(flags + ["--output-dir", out])
    assert len(records) == 1 and "curves not drawn: no canvas" in caplog.text
    assert sorted(rundir.list_checkpoints(out)) == [1]
    assert not os.path.exists(os.path.join(out, "curves.png"))
