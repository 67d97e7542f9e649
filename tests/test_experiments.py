"""Tests of the paper's experiment presets and the table runner."""
import json
import os
import subprocess
import sys

import pytest

import symbols
import train_cifar
from experiments import presets, runner
from experiments.presets import FAIL, TABLES
from training.checkpoint import read_metrics
from training.module import build_symbol

ALL = [p for rows in TABLES.values() for p in rows]


def test_presets_cover_the_papers_tables():
    assert len(presets.TABLE1) == 15 and len(presets.TABLE2) == 10 and len(presets.TABLE3) == 8
    names = [p.name for p in ALL]
    assert all(len(set(p.name for p in rows)) == len(rows) for rows in TABLES.values())
    by_name = {p.name: p for p in presets.TABLE2}
    assert by_name["full_preact_164"].paper_error == 5.46
    assert by_name["bn_after_add_110"].paper_error == 8.17
    table1 = {p.name: p for p in presets.TABLE1}
    assert table1["exclusive_gating_bg6"].shortcut_params == {"gate_bias": -6.0}
    assert table1["constant_scaling_shortcut_only"].paper_error == FAIL
    assert "cifar100_full_preact_1001" in names


@pytest.mark.parametrize("preset", ALL, ids=[f"{p.dataset}-{p.name}" for p in ALL])
def test_every_preset_builds(preset):
    classes = 100 if preset.dataset == "cifar100" else 10
    net = symbols.get_symbol(classes, preset.num_layers, (3, 32, 32), unit=preset.unit,
                             shortcut=preset.shortcut, **preset.shortcut_params)
    assert symbols.output_shape(net, (3, 32, 32)) == (1, classes)


def test_unknown_tables_and_rows_fail_clearly():
    with pytest.raises(ValueError, match="valid: table1, table2, table3"):
        presets.select_rows("table4")
    with pytest.raises(ValueError, match="has no row nope; its rows: original_110"):
        presets.select_rows("table2", ["nope"])


def test_budget_schedule_keeps_the_recipes_shape():
    assert runner.schedule() == (64000, (32000, 48000), 400)
    assert runner.schedule(640) == (640, (320, 480), 4)
    assert runner.budget_depth(110) == 20 and runner.budget_depth(1001) == 29


@pytest.mark.parametrize("row, depth", [("original_110", "20"), ("original_164", "29")])
def test_budget_nets_keep_the_rows_branch_type(row, depth):
    preset = presets.select_rows("table2", [row])[0]
    cmd = runner.train_command(preset, "/nonexistent", "cifar", 0, budget=10)
    args = train_cifar.parse_args(cmd[3:])
    assert args.num_layers == int(depth)
    has_conv3 = "stage1_unit1_conv3_weight" in build_symbol(args).list_arguments()
    assert has_conv3 == (preset.num_layers >= 164)


ROWS = ["original_110", "full_preact_110"]
# Budget runs on a small CIFAR folder: ResNet-20, 4 iterations of 40 images.
SMALL = ["--batch-size", "40", "--no-plots"]


@pytest.fixture
def small_cifar(tmp_path):
    from data.synthetic import make_synthetic_cifar
    return make_synthetic_cifar(str(tmp_path / "cifar"), train_per_batch=16, test_size=40)


def test_budget_table_runs_end_to_end(small_cifar, tmp_path):
    out = str(tmp_path / "table2")
    logs = []
    results, figure = runner.run_table("table2", out, small_cifar, ROWS, budget=4,
                                       budget_examples=60, extra_args=SMALL, log=logs.append)
    assert runner.BUDGET_WARNING in logs
    assert [r["row"] for r in results] == [f"{row} (ResNet-20)" for row in ROWS]
    assert all(r["runs"] == 1 for r in results)
    for r in results:
        assert 0 <= r["median"] <= 100
        assert r["difference"] == pytest.approx(r["median"] - r["paper"])
    table = open(os.path.join(out, "table.md")).read()
    assert "not comparable with the paper" in table
    assert "| full_preact_110 (ResNet-20) | 6.37 |" in table
    assert open(os.path.join(out, "table.csv")).read().startswith("row,paper_error,")
    assert [os.path.basename(f) for f in figure] == ["figure.png", "figure.pdf"]
    assert os.path.getsize(figure[0]) > 10000
    config = json.load(open(os.path.join(out, "full_preact_110", "run0", "config.json")))
    assert config["num_layers"] == 20 and config["unit"] == "full_preact"
    assert config["num_examples"] == 60 and config["num_iters"] == 4


def test_half_finished_table_resumes(small_cifar, tmp_path):
    out = str(tmp_path / "table2")
    runner.run_table("table2", out, small_cifar, ROWS[:1], budget=4, budget_examples=None,
                     extra_args=SMALL, log=lambda _: None)
    # The second row stopped after its first epoch: a checkpoint, not done.
    preset = presets.select_rows("table2", ROWS[1:])[0]
    run_dir = os.path.join(out, preset.name, "run0")
    cmd = runner.train_command(preset, run_dir, small_cifar, 0, 4, None, SMALL)
    cmd[cmd.index("--num-iters") + 1] = "2"
    subprocess.run(cmd, check=True, capture_output=True)
    assert len(read_metrics(run_dir)) == 1 and not runner.is_done(run_dir)
    logs = []
    results, _ = runner.run_table("table2", out, small_cifar, ROWS, budget=4,
                                  budget_examples=None, extra_args=SMALL, log=logs.append)
    assert any(line.endswith("original_110/run0: done before, skipped") for line in logs)
    assert any(line.endswith("full_preact_110/run0: resuming") for line in logs)
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1, 2]
    assert all(r["runs"] == 1 for r in results)


def test_a_failed_run_is_reported_and_not_marked_done(tmp_path):
    run_dir = str(tmp_path / "row" / "run0")
    with pytest.raises(ChildProcessError, match="failed \\(exit 3\\); run the table again"):
        runner.run_one([sys.executable, "-c", "raise SystemExit(3)"], run_dir, lambda _: None)
    assert not runner.is_done(run_dir)


def test_experiments_command_errors_in_one_line():
    out = subprocess.run([sys.executable, "-m", "experiments", "table2"], capture_output=True,
                         text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == ("python -m experiments: error: give a table, --data-dir "
                                  "and --out (or --list)")
    out = subprocess.run([sys.executable, "-m", "experiments", "table9", "--data-dir", "x",
                          "--out", "y"], capture_output=True, text=True)
    assert out.returncode == 2 and "valid: table1, table2, table3" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_table_folder_in_use_by_another_runner_is_refused(small_cifar, tmp_path):
    from common.files import FolderLockedError
    from tests.train_support import hold_in_child
    out = tmp_path / "table2"
    holder = hold_in_child(out, runner.RUNNER_LOCK)
    try:
        with pytest.raises(FolderLockedError, match=f"{out} is in use by process {holder.pid}"):
            runner.run_table("table2", str(out), small_cifar, ROWS, budget=4,
                             extra_args=SMALL, log=lambda _: None)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert os.listdir(out) == [runner.RUNNER_LOCK]  # no plan, no run started


def test_a_corrupt_plan_is_named_by_status_and_report(tmp_path):
    from experiments import status
    (tmp_path / "plan.json").write_text('{"runs": ["row/run0"')
    message = f"^{tmp_path / 'plan.json'}: not valid JSON"
    with pytest.raises(ValueError, match=message):
        status.table_status(str(tmp_path))
    with pytest.raises(ValueError, match=message):
        runner.report_table("table2", str(tmp_path))
