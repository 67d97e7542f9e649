"""Curves and tables from recorded run directories (plots/)."""
import json
import math
import os
import subprocess
import sys

import matplotlib.image
import pytest

import plots
import plots.runs
import plots.seeds
from plots.__main__ import main
from common.cli import run_main
from training.rundir import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITERS_PER_EPOCH = 391  # 50k CIFAR images, batch 128


def cifar_record(epoch, drop):
    """A plausible epoch of CIFAR-10 training: loss and error fall, then step at lr drops."""
    lr = 0.1 if epoch <= 20 else 0.01
    train_loss = 1.6 * math.exp(-epoch / 6) + 0.25 - (0.15 if epoch > 20 else 0) - drop * 0.01
    val_err = 0.45 * math.exp(-epoch / 5) + 0.09 - (0.03 if epoch > 20 else 0) - drop * 0.01
    return {"epoch": epoch, "iteration": epoch * ITERS_PER_EPOCH, "train_loss": train_loss,
            "train_acc": 1 - train_loss / 3, "val_loss": val_err * 2, "val_acc": 1 - val_err,
            "lr": lr, "epoch_seconds": 31.5, "samples_per_sec": 1587.3}


def make_run(root, name, epochs, config=None, drop=0, tail=""):
    """A run directory with ``config.json`` and ``epochs`` lines of ``metrics.jsonl``."""
    run = root / name
    run.mkdir()
    config = config or {"num_layers": 110, "unit": "full_preact", "shortcut": "identity",
                        "dataset": "cifar10", "batch_size": 128}
    (run / "config.json").write_text(json.dumps(config))
    lines = [json.dumps(cifar_record(e, drop)) for e in range(1, epochs + 1)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n" + tail)
    return str(run)


@pytest.fixture
def two_runs(tmp_path):
    orig = make_run(tmp_path, "orig", 30, {"num_layers": 110, "unit": "original",
                                           "shortcut": "identity", "dataset": "cifar10"})
    pre = make_run(tmp_path, "pre", 30, drop=1)
    return [orig, pre]


def test_plot_runs_writes_png_and_pdf_that_open(two_runs, tmp_path):
    png, pdf = plots.plot_runs(two_runs, str(tmp_path / "out" / "fig6"))
    assert png.endswith("fig6.png") and pdf.endswith("fig6.pdf")
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (420, 640)  # 6.4 x 4.2 inches at 100 dpi
    assert image[..., :3].std() > 0.05  # something was drawn
    with open(pdf, "rb") as f:
        assert f.read(5) == b"%PDF-"
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith(".tmp")]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(png).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_figure_has_dashed_loss_left_and_solid_error_right(two_runs):
    fig = plots.curves.curves_figure(two_runs, x="iteration")
    loss_ax, err_ax = fig.axes
    assert [line.get_linestyle() for line in loss_ax.lines] == ["--", "--"]
    assert [line.get_linestyle() for line in err_ax.lines] == ["-", "-"]
    # one colour per run, shared by its two curves
    assert [line.get_color() for line in loss_ax.lines] == \
           [line.get_color() for line in err_ax.lines]
    assert loss_ax.lines[0].get_color() != loss_ax.lines[1].get_color()
    assert loss_ax.get_xlabel() == "Iterations"
    assert list(err_ax.lines[0].get_xdata())[-1] == 30 * ITERS_PER_EPOCH
    first = cifar_record(1, 0)
    assert err_ax.lines[0].get_ydata()[0] == pytest.approx(100 * (1 - first["val_acc"]))
    legend = [t.get_text() for t in err_ax.get_legend().get_texts()]
    assert legend[:2] == ["ResNet-110 original identity", "ResNet-110 full_preact identity"]


def test_label_from_config(tmp_path):
    run = make_run(tmp_path, "cs", 2, {"num_layers": 56, "unit": "full_preact",
                                        "shortcut": "constant_scaling",
                                        "shortcut_param": ["scale=0.8"]})
    assert plots.run_label(run) == "ResNet-56 full_preact constant_scaling scale=0.8"
    (tmp_path / "cs" / "config.json").unlink()
    assert plots.run_label(run) == "cs"


def test_labels_override_and_must_match_runs(two_runs):
    fig = plots.curves.curves_figure(two_runs, labels=["a", "b"], title="t")
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()][:2] == ["a", "b"]
    with pytest.raises(ValueError, match="1 labels given for 2 runs"):
        plots.plot_runs(two_runs, "unused", labels=["a"])


def test_run_in_progress_skips_its_truncated_last_line_and_says_so(tmp_path, caplog):
    run = make_run(tmp_path, "live", 5, tail='{"epoch": 6, "iteration": 2346, "train_lo')
    records = read_metrics(run, required=True)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    path = os.path.join(run, "metrics.jsonl")
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:6: partly written last line skipped"]
    png, _ = plots.plot_runs([run], str(tmp_path / "live"), x="iteration")
    assert matplotlib.image.imread(png).shape[:2] == (420, 640)


def test_single_epoch_run_plots_and_tabulates(tmp_path):
    run = make_run(tmp_path, "one", 1)
    plots.plot_runs([run], str(tmp_path / "one"))
    assert "| ResNet-110 full_preact identity | 1 |" in plots.results_table([run])


def test_corrupt_line_before_the_end_is_skipped_with_a_warning(tmp_path, caplog):
    run = make_run(tmp_path, "bad", 4)
    path = os.path.join(run, "metrics.jsonl")
    lines = open(path).read().splitlines()
    lines[1] = lines[1][:20]
    lines[2] = "[3]"
    open(path, "w").write("\n".join(lines) + "\n")
    records = read_metrics(run, required=True)
    assert [r["epoch"] for r in records] == [1, 4]
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:2: not a JSON record; line skipped", f"{path}:3: not a JSON object; line skipped"]


def test_epochs_out_of_order_warn(tmp_path, caplog):
    """Two runs that wrote into one directory (records 1, 2, 1, 2)."""
    run = make_run(tmp_path, "mixed", 2)
    path = os.path.join(run, "metrics.jsonl")
    lines = open(path).read().splitlines()
    open(path, "w").write("\n".join(lines + lines) + "\n")
    assert len(read_metrics(run, required=True)) == 4
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:3: epoch 1 after epoch 2 (did two runs write here?)"]


def test_results_table_numbers(two_runs, tmp_path):
    table = plots.results_table(two_runs)
    rows = [line.split("|")[1:-1] for line in table.splitlines()]
    assert [c.strip() for c in rows[0]] == ["Run", "Epochs", "Final test error (%)",
                                            "Best test error (%)", "Best at epoch"]
    name, epochs, final, best, at = [c.strip() for c in rows[3]]
    errors = [100 * (1 - cifar_record(e, 1)["val_acc"]) for e in range(1, 31)]
    assert name == "ResNet-110 full_preact identity" and epochs == "30"
    assert float(final) == pytest.approx(errors[-1], abs=0.005)
    assert float(best) == pytest.approx(min(errors), abs=0.005)
    assert int(at) == errors.index(min(errors)) + 1
    # a run whose error went up at the end: best differs from final
    run = make_run(tmp_path, "overfit", 3)
    path = os.path.join(run, "metrics.jsonl")
    worse = dict(cifar_record(4, 0), val_acc=0.5, val_top5_acc=0.9)
    with open(path, "a") as f:
        f.write(json.dumps(worse) + "\n")
    row = plots.results_table([run], labels=["x"]).splitlines()[2]
    assert row == f"| x | 4 | 50.00 | {100 * (1 - cifar_record(3, 0)['val_acc']):.2f} | 3 | 10.00 |"


def test_cli_writes_figure_and_table(two_runs, tmp_path, capsys):
    table = tmp_path / "table.md"
    assert main(two_runs + ["--out", str(tmp_path / "c"), "--x", "iteration",
                            "--table", str(table)]) == 0
    assert os.path.getsize(tmp_path / "c.png") > 0 and os.path.getsize(tmp_path / "c.pdf") > 0
    assert table.read_text() == plots.results_table(two_runs)
    assert "ResNet-110 original identity" in capsys.readouterr().out


@pytest.mark.parametrize("make, message", [
    (lambda p: str(p / "nope"), "run directory not found"),
    (lambda p: (p / "empty").mkdir() or str(p / "empty"), "no metrics.jsonl"),
    (lambda p: ((p / "e").mkdir(), (p / "e" / "metrics.jsonl").write_text('{"ep'))[0] or
     str(p / "e"), "no complete epoch"),
])
def test_cli_bad_run_dir_is_one_line_error(tmp_path, capsys, make, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, [make(tmp_path), "--out", str(tmp_path / "x")], prog="plots")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_python_dash_m_plots(two_runs, tmp_path):
    done = subprocess.run([sys.executable, "-m", "plots", two_runs[0], "--out",
                           str(tmp_path / "m")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert os.path.isfile(tmp_path / "m.pdf")
    done = subprocess.run([sys.executable, "-m", "plots", str(tmp_path / "missing"), "--out",
                           str(tmp_path / "m")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().endswith(
        f"run directory not found: {tmp_path / 'missing'} (RESNET_TRACEBACK=1 shows the "
        "traceback)")


def test_python_dash_m_plots_warns_about_a_corrupt_line_and_a_partial_last_one(tmp_path):
    run = make_run(tmp_path, "bad", 3, tail='{"epoch": 4, "itera')
    path = os.path.join(run, "metrics.jsonl")
    lines = open(path).read().split("\n")
    lines[1] = "garbage"
    open(path, "w").write("\n".join(lines))
    done = subprocess.run([sys.executable, "-m", "plots", run, "--out", str(tmp_path / "m")],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"{path}:2: not a JSON record; line skipped",
                                        f"{path}:4: partly written last line skipped"]
    assert "| ResNet-110 full_preact identity | 3 |" in done.stdout


def test_training_error_shares_the_test_errors_axis(tmp_path):
    """--train-error: the 2015 paper's Fig. 6, both errors in % on one axis."""
    from plots.curves import curves_figure
    run = make_run(tmp_path, "r20", 4)
    fig = curves_figure([run], x="iteration", train_key="train_error")
    (ax,) = fig.axes
    dashed, solid = ax.lines[:2]
    records = read_metrics(run)
    assert list(dashed.get_ydata()) == pytest.approx([100 * (1 - r["train_acc"]) for r in records])
    assert list(solid.get_ydata()) == pytest.approx([100 * (1 - r["val_acc"]) for r in records])
    assert list(dashed.get_xdata()) == [r["iteration"] for r in records]
    assert dashed.get_linestyle() == "--" and solid.get_linestyle() == "-"
    done = subprocess.run([sys.executable, "-m", "plots", run, "--out", str(tmp_path / "f6"),
                           "--train-error", "--x", "iteration"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(tmp_path / "f6.png") > 1000
    with pytest.raises(ValueError, match="unknown training curve 'loss'"):
        curves_figure([run], train_key="loss")


def test_the_solid_curve_names_the_images_it_was_measured_on(tmp_path):
    """A CIFAR run evaluates on the test batch unless it holds images out of training;
    an ImageNet run on the validation set. Both figures say which."""
    cifar = {"num_layers": 20, "unit": "original", "dataset": "cifar10",
             "validation_split": False, "validation_images": None}
    tested = make_run(tmp_path, "tested", 3, cifar)
    held = make_run(tmp_path, "held", 3, dict(cifar, validation_images=1000))
    imagenet = make_run(tmp_path, "imagenet", 3, {"num_layers": 18, "data_nthreads": 4})
    assert plots.runs.evaluated_set([tested]) == "test"
    assert plots.runs.evaluated_set([held]) == "validation"
    assert plots.runs.evaluated_set([imagenet]) == "validation"
    assert plots.runs.evaluated_set([tested, held]) == "held-out"

    def texts(fig):
        legend = [t.get_text() for ax in fig.axes if ax.get_legend()
                  for t in ax.get_legend().get_texts()]
        return legend + [ax.get_ylabel() for ax in fig.axes]

    fig = plots.curves.curves_figure([held], train_key="train_error")
    assert "validation error" in texts(fig)
    assert "Error (%): training dashed, validation solid" in texts(fig)
    fig = plots.seeds.seeded_runs_figure({"ResNet-20": [tested]}, train_key="train_error")
    assert "test error (%)" in texts(fig) and "validation error (%)" not in texts(fig)
    fig = plots.seeds.seeded_runs_figure({"ResNet-20": [held]})
    assert "Validation error (%) (solid)" in texts(fig)
