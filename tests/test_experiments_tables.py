"""The Identity Mappings paper's tables (experiments/tables.py): every row is the network
it names, with the paper's recipe; budget tables end to end, resume, the report."""
import json
import os
import subprocess
import sys

import pytest

from experiments import tables
from experiments.tables import FAIL, TABLES
from tests.experiments_support import (PAPER_PARAMS, identity_params, row_network,
                                       shortcut_params)
from training.rundir import RUNNER_LOCK, is_done, read_metrics

ALL = [(name, r) for name, t in TABLES.items() for r in t.rows]


def test_the_tables_have_the_papers_rows_and_errors():
    assert [len(t.rows) for t in TABLES.values()] == [15, 10, 8]
    assert all(len({r.name for r in t.rows}) == len(t.rows) == len(t.paper)
               for t in TABLES.values())
    assert TABLES["table2"].paper["full_preact_164"] == 5.46
    assert TABLES["table2"].paper["bn_after_add_110"] == 8.17
    assert TABLES["table1"].paper["constant_scaling_shortcut_only"] == FAIL
    gating = tables.select_rows("table1", ["exclusive_gating_bg6"])[0]
    assert (gating.shortcut, gating.params) == ("exclusive_gating", {"gate_bias": -6.0})
    assert TABLES["table3"].paper["cifar100_full_preact_1001"] == 22.71


@pytest.mark.parametrize("table,row", ALL, ids=[f"{t}-{r.name}" for t, r in ALL])
def test_every_row_trains_the_network_it_names(table, row, tmp_path):
    """The command a table runs for a row parses to the row's unit, shortcut and settings,
    builds the graph ``symbols`` makes of them, has the paper's parameter count (within
    2 %) and, for the shortcuts of Table 1, exactly the parameters they add."""
    (run_dir, cmd), = tables.table_runs(str(tmp_path), "cifar", [row], 1)
    classes = 100 if row.dataset == "cifar100" else 10
    _, count = row_network(cmd, row, row.num_layers, classes)
    base = identity_params(row, row.num_layers, classes)
    assert abs(base - PAPER_PARAMS[row.num_layers]) / PAPER_PARAMS[row.num_layers] < 0.02
    assert count - base == shortcut_params(row.shortcut, row.num_layers)
    assert cmd[cmd.index("--num-iters") + 1] == "64000"
    assert cmd[cmd.index("--lr-step-iters") + 1] == "32000,48000"
    assert cmd[cmd.index("--warmup-iters") + 1] == "400"
    assert row.branch == ("bottleneck" if row.num_layers >= 164 else "basic")


def test_unknown_tables_and_rows_fail_clearly():
    with pytest.raises(ValueError, match="valid: table1, table2, table3"):
        tables.select_rows("table4")
    with pytest.raises(ValueError, match="has no row nope; its rows: original_110"):
        tables.select_rows("table2", ["nope"])


@pytest.mark.parametrize("name, depth", [("original_110", 20), ("original_164", 29)])
def test_budget_nets_keep_the_rows_branch_type_and_the_recipes_shape(name, depth, tmp_path):
    row = tables.select_rows("table2", [name])[0]
    (_, cmd), = tables.table_runs(str(tmp_path), "cifar", [row], 1, budget=640,
                                  budget_examples=500)
    net, _ = row_network(cmd, row, depth)
    assert ("stage1_unit1_conv3_weight" in net.list_arguments()) == (row.num_layers >= 164)
    values = {flag: cmd[cmd.index(flag) + 1] for flag in
              ("--num-iters", "--lr-step-iters", "--warmup-iters", "--num-examples")}
    assert values == {"--num-iters": "640", "--lr-step-iters": "320,480",
                      "--warmup-iters": "4", "--num-examples": "500"}


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
    results, figure = tables.run_table("table2", out, small_cifar, ROWS, budget=4,
                                       budget_examples=60, extra_args=SMALL, log=logs.append)
    assert tables.BUDGET_WARNING in logs
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
    run = os.path.join(out, "runs", "full_preact_110", "seed0")
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["num_layers"] == 20 and config["unit"] == "full_preact"
    assert config["num_examples"] == 60 and config["num_iters"] == 4


def test_half_finished_table_resumes(small_cifar, tmp_path):
    out = str(tmp_path / "table2")
    tables.run_table("table2", out, small_cifar, ROWS[:1], budget=4, budget_examples=None,
                     extra_args=SMALL, log=lambda _: None)
    # The second row stopped after its first epoch: a checkpoint, not done.
    (run_dir, cmd), = tables.table_runs(out, small_cifar, tables.select_rows("table2", ROWS[1:]),
                                        1, budget=4, extra_args=SMALL)
    cmd[cmd.index("--num-iters") + 1] = "2"
    subprocess.run(cmd, check=True, capture_output=True)
    assert len(read_metrics(run_dir)) == 1 and not is_done(run_dir)
    logs = []
    results, _ = tables.run_table("table2", out, small_cifar, ROWS, budget=4,
                                  budget_examples=None, extra_args=SMALL, log=logs.append)
    assert any(line.endswith("original_110/seed0: done before, skipped") for line in logs)
    assert any(line.endswith("full_preact_110/seed0: resuming") for line in logs)
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1, 2]
    assert all(r["runs"] == 1 for r in results)


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
    # the flags passed through to train_cifar.py are checked before any run starts
    out = subprocess.run([sys.executable, "-m", "experiments", "table2", "--data-dir", "x",
                          "--out", "y", "--batchsize", "3"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == (
        "python -m experiments: error: unrecognized arguments: --batchsize 3")
    out = subprocess.run([sys.executable, "-m", "experiments", "table2", "--data-dir", "x",
                          "--out", "y", "--mom", "2"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == (
        "python -m experiments: error: --mom must be in [0, 1) and --wd >= 0")
    assert not os.path.exists("y")


def test_a_table_folder_in_use_by_another_runner_is_refused(small_cifar, tmp_path):
    from common.files import FolderLockedError
    from tests.train_support import hold_in_child
    out = tmp_path / "table2"
    holder = hold_in_child(out, RUNNER_LOCK)
    try:
        with pytest.raises(FolderLockedError, match=f"{out} is in use by process {holder.pid}"):
            tables.run_table("table2", str(out), small_cifar, ROWS, budget=4,
                             extra_args=SMALL, log=lambda _: None)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert os.listdir(out) == [RUNNER_LOCK]  # no plan, no run started


def test_a_corrupt_plan_is_named_by_the_report(tmp_path):
    (tmp_path / "plan.json").write_text('{"runs": ["row/run0"')
    with pytest.raises(ValueError, match=f"^{tmp_path / 'plan.json'}: not valid JSON"):
        tables.report_table("table2", str(tmp_path))
