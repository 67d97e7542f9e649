"""The one experiment runner (experiments/runner.py): rows, their training commands with
the recipe, and a plan of runs launched under the folder's lock and reported."""
import json
import sys

import train_cifar
from experiments.runner import Row, run_plan, train_command
from training.recipe import CIFAR
from training.rundir import PLAN, is_done


def test_a_row_names_its_network_in_the_training_flags():
    row = Row("gated", 110, "original", "exclusive_gating", {"gate_bias": -6.0},
              projection="A", dataset="cifar100")
    args = train_cifar.parse_args(["--data-dir", "d", "--output-dir", "o"] + row.flags())
    assert (args.num_layers, args.unit, args.shortcut, args.projection, args.dataset,
            args.bottleneck) == (110, "original", "exclusive_gating", "A", "cifar100", None)
    assert args.shortcut_param == {"gate_bias": -6.0}
    assert "--num-layers" in row.flags(20) and row.flags(20)[3] == "20"
    assert Row("b", 164).branch == "bottleneck" and Row("b", 110).branch == "basic"
    assert Row("b", 110, bottleneck=True).branch == "bottleneck"
    assert Row("b", 164, bottleneck=False).flags()[-2:] == ["--bottleneck", "no"]


def test_train_command_writes_the_recipe_out_and_the_users_flags_last():
    schedule = CIFAR.scaled(2000, warmup=False)
    cmd = train_command(Row("r", 20, projection="A"), "out/r/seed1", "cifar", 1, schedule,
                        depth=8, batch_size=32, data_flags=["--validation-images", "100"],
                        extra_args=["--lr", "0.05"])
    assert cmd[:3] == [sys.executable, "-m", "train_cifar"]
    args = train_cifar.parse_args(cmd[3:])
    assert (args.num_layers, args.seed, args.batch_size, args.validation_images) == \
        (8, 1, 32, 100)
    assert (args.num_iters, args.lr_step_iters, args.warmup_iters) == (2000, (1000, 1500), 0)
    assert (args.optimizer, args.mom, args.wd, args.lr_factor) == ("nag", 0.9, 1e-4, 0.1)
    assert args.lr == 0.05  # the user's flag wins: it comes last


def test_run_plan_writes_the_plan_runs_the_steps_and_reports(tmp_path):
    out = tmp_path / "exp"
    runs = [(str(out / "a" / "seed0"), [sys.executable, "-c", "pass"]),
            (str(out / "b" / "seed0"), [sys.executable, "-c", "raise SystemExit(4)"])]
    logs, steps = [], []
    result = run_plan(str(out), {"what": "test"}, runs, log=logs.append, warning="CAREFUL",
                      before=lambda: steps.append("before"),
                      report=lambda: steps.append("report") or "the report")
    assert result == "the report" and steps == ["before", "report"]
    assert logs[0] == "CAREFUL"
    assert json.loads((out / PLAN).read_text()) == {"what": "test",
                                                    "runs": ["a/seed0", "b/seed0"]}
    assert is_done(runs[0][0]) and not is_done(runs[1][0])
    assert any(line.startswith(f"FAILED {runs[1][0]} (exit 4)") for line in logs)
    failures = run_plan(str(out), {}, runs, log=lambda _: None)
    assert [f["run_dir"] for f in failures] == [runs[1][0]]
