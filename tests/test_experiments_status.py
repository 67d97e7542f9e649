"""``python3 -m experiments status`` (experiments/status.py): what it reads from the run
folders, what it shows, and that it runs without MXNet, as plots do."""
import json
import os
import subprocess
import sys

import pytest

from experiments import status
from training.rundir import RunRecord, record_launch, write_config, write_metrics, write_plan
from train_support import ROOT

# Blocks MXNet in the child before the module runs: any import of it fails.
WITHOUT_MXNET = ("import runpy, sys\n"
                 "sys.modules['mxnet'] = None\n"
                 "sys.argv = sys.argv[1:]\n"
                 "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")


def record(epoch, acc=0.8, seconds=10.0):
    return {"epoch": epoch, "iteration": 10 * epoch, "train_loss": 1.0 / epoch,
            "train_acc": acc, "val_loss": 1.2, "val_acc": acc, "lr": 0.1,
            "epoch_seconds": seconds, "samples_per_sec": 1280.0}


@pytest.fixture
def table(tmp_path):
    """A table folder: row a finished (3 of 3 epochs), row b stopped after 1 of 4, row c
    failed, and a stray run folder outside the plan."""
    out = tmp_path / "table"
    runs = {"a/run0": 3, "b/run0": 1, "c/run0": 0}
    write_plan(str(out), {"table": "table2", "runs": list(runs)})
    for name, epochs in runs.items():
        run = str(out / name)
        os.makedirs(run)
        write_config(run, RunRecord({}, planned_epochs=3 if name == "a/run0" else 4))
        write_metrics(run, [record(e) for e in range(1, epochs + 1)])
    with open(out / "a/run0/done.json", "w") as f:
        json.dump({"command": []}, f)
    record_launch(str(out / "c/run0"), launcher="local", state="failed", exit_status=2,
                  last_line="train_cifar.py: error: bad flag")
    os.makedirs(out / "extra/seed0")
    write_metrics(str(out / "extra/seed0"), [record(1)])
    return str(out)


def test_status_shows_every_run_in_the_plans_order_then_the_others(table):
    rows = status.table_status(table)
    assert [(r["row"], r["repeat"], r["state"], r["epochs"], r["planned"]) for r in rows] == [
        ("a", "run0", "done", 3, 3), ("b", "run0", "stopped", 1, 4),
        ("c", "run0", "failed", 0, 4), ("extra", "seed0", "stopped", 1, None)]
    assert rows[0]["val_error"] == pytest.approx(20.0)
    text = status.format_status(rows)
    assert f"{os.path.join(table, 'c/run0')}: failed (exit 2): train_cifar.py: error: bad flag" \
        in text
    assert text.endswith("4 run(s): 1 done, 2 stopped, 1 failed")


def test_a_corrupt_config_hides_only_its_planned_epochs(table, caplog):
    path = os.path.join(table, "b/run0/config.json")
    with open(path, "w") as f:
        f.write("{")
    rows = status.table_status(table)
    assert rows[1]["planned"] is None and rows[1]["epochs"] == 1
    assert any(path in r.getMessage() and "planned epochs are not shown" in r.getMessage()
               for r in caplog.records)


def test_a_corrupt_plan_is_named(tmp_path):
    (tmp_path / "plan.json").write_text('{"runs": ["row/run0"')
    with pytest.raises(ValueError, match=f"^{tmp_path / 'plan.json'}: not valid JSON"):
        status.table_status(str(tmp_path))


def run_without_mxnet(*args):
    return subprocess.run([sys.executable, "-c", WITHOUT_MXNET, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_status_runs_without_mxnet(table):
    done = run_without_mxnet("experiments", "status", table)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("4 run(s): 1 done, 2 stopped, 1 failed")
    # the block works: a module that needs MXNet fails under it
    assert "MXNet is not installed" in run_without_mxnet("training.checkpoint").stderr


def test_plots_run_without_mxnet(table, tmp_path):
    done = run_without_mxnet("plots", os.path.join(table, "a/run0"), "--out",
                             str(tmp_path / "curves"))
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(tmp_path / "curves.png") > 1000
