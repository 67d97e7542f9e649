"""Training curves in the style of the paper's Fig. 6, and a table of test errors.

Training loss is dashed on the left axis and test error solid on the right axis, one
colour per run; with ``train_key="train_error"`` the training error is dashed on the same
axis as the test error, as in the 2015 paper's Fig. 6. Runs evaluated on held-out
images say "validation error" instead (``plots.runs.evaluated_set``). Figures are drawn
with the Agg canvas directly, so importing this module leaves matplotlib's global backend
alone.
"""
import logging
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from common.files import atomic_path
from plots.runs import evaluated_set, run_label
from training.rundir import error_percent, read_metrics

X_AXES = {"epoch": "Epochs", "iteration": "Iterations"}


def _labels(run_dirs, labels):
    if labels is None:
        return [run_label(d) for d in run_dirs]
    if len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels given for {len(run_dirs)} runs")
    return list(labels)


def _series(records, x, key, path):
    """(xs, ys) of the records that have both ``x`` and a value for ``key``."""
    xs, ys = [], []
    for r in records:
        y = error_percent(r, key) if key.endswith("_acc") else r.get(key)
        if y is None:
            continue
        if x not in r:
            raise ValueError(f"{path}: epoch record without '{x}' (try --x epoch)")
        xs.append(r[x])
        ys.append(y)
    return xs, ys


def save_figure(fig, path):
    """Write ``fig`` to ``path`` atomically; the format comes from the extension."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=os.path.splitext(path)[1][1:], dpi=100)


TRAIN_CURVES = {"train_loss": "training loss", "train_error": "training error"}


def curves_figure(run_dirs, x="epoch", labels=None, title=None, train_key="train_loss"):
    """The Fig. 6-style figure of ``run_dirs`` (see :func:`plot_runs`)."""
    if x not in X_AXES:
        raise ValueError(f"unknown x axis '{x}': choose from {', '.join(X_AXES)}")
    if train_key not in TRAIN_CURVES:
        raise ValueError(f"unknown training curve '{train_key}': choose from "
                         f"{', '.join(TRAIN_CURVES)}")
    if not run_dirs:
        raise ValueError("no run directories given")
    names = _labels(run_dirs, labels)
    evaluated = evaluated_set(run_dirs)
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    loss_ax = fig.add_subplot(1, 1, 1)
    errors_only = train_key == "train_error"
    err_ax = loss_ax if errors_only else loss_ax.twinx()
    train = "train_acc" if errors_only else "train_loss"
    handles = []
    for i, (run_dir, name) in enumerate(zip(run_dirs, names)):
        records = read_metrics(run_dir, required=True)
        colour = f"C{i % 10}"
        marker = "o" if len(records) == 1 else None  # a lone point has no line
        loss_ax.plot(*_series(records, x, train, run_dir), "--", color=colour,
                     marker=marker, linewidth=1)
        err_ax.plot(*_series(records, x, "val_acc", run_dir), "-", color=colour,
                    marker=marker, linewidth=1.5)
        handles.append(Line2D([], [], color=colour, label=name))
    handles += [Line2D([], [], color="grey", linestyle="--", label=TRAIN_CURVES[train_key]),
                Line2D([], [], color="grey", label=f"{evaluated} error")]
    loss_ax.set_xlabel(X_AXES[x])
    if errors_only:
        loss_ax.set_ylabel(f"Error (%): training dashed, {evaluated} solid")
    else:
        loss_ax.set_ylabel("Training loss (dashed)")
        err_ax.set_ylabel(f"{evaluated.capitalize()} error (%) (solid)")
    loss_ax.set_ylim(bottom=0)
    err_ax.set_ylim(bottom=0)
    loss_ax.set_xlim(left=0)
    loss_ax.grid(alpha=0.3)
    err_ax.legend(handles=handles, loc="upper right", fontsize="small")
    if title:
        loss_ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_runs(run_dirs, out_prefix, x="epoch", labels=None, title=None,
              train_key="train_loss"):
    """Plot the training loss (or, with ``train_key="train_error"``, the training error)
    and the test error of ``run_dirs`` against ``x``.

    ``x`` is ``'epoch'`` or ``'iteration'``; ``labels`` overrides the legend labels
    taken from each run's config. Writes ``out_prefix.png`` and ``out_prefix.pdf``
    and returns ``[png_path, pdf_path]``. Runs still in progress are plotted as far
    as they got.
    """
    fig = curves_figure(run_dirs, x=x, labels=labels, title=title, train_key=train_key)
    paths = [f"{out_prefix}.png", f"{out_prefix}.pdf"]
    for path in paths:
        save_figure(fig, path)
    return paths


def draw_curves(run_dir):
    """The curves of one run into ``run_dir/curves.png`` and ``.pdf`` (what a training
    script draws when it ends); a failure here only warns, so the run's results survive
    a plotting problem."""
    try:
        plot_runs([run_dir], os.path.join(run_dir, "curves"))
    except Exception as err:
        logging.warning("curves not drawn: %s", err)


def _fmt(value):
    return "—" if value is None else f"{value:.2f}"


def results_table(run_dirs, labels=None):
    """A markdown table of each run's epochs, final and best test error (%).

    The best error is the lowest over the recorded epochs, with the epoch it was
    reached at; ImageNet runs with ``val_top5_acc`` also get the final top-5 error.
    """
    names = _labels(run_dirs, labels)
    runs = [read_metrics(d, required=True) for d in run_dirs]
    top5 = any("val_top5_acc" in r for records in runs for r in records)
    header = ["Run", "Epochs", "Final test error (%)", "Best test error (%)", "Best at epoch"]
    header += ["Final top-5 error (%)"] if top5 else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, records in zip(names, runs):
        scored = [(error_percent(r), r.get("epoch")) for r in records
                  if error_percent(r) is not None]
        final = scored[-1][0] if scored else None
        best, best_epoch = min(scored, key=lambda s: s[0]) if scored else (None, None)
        row = [name, str(records[-1].get("epoch", len(records))), _fmt(final), _fmt(best),
               "—" if best_epoch is None else str(best_epoch)]
        if top5:
            row.append(_fmt(error_percent(records[-1], "val_top5_acc")))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
