"""Figures of rows trained with several seeds, in the papers' style: one colour per row,
each seed a thin line and their mean a thick one; the training curve dashed, the error on
the runs' test or validation images (``plots.runs.evaluated_set``) solid."""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from plots.curves import save_figure
from plots.runs import evaluated_set
from training.rundir import error_percent, read_metrics

TRAIN_KEYS = {"train_loss": "Training loss", "train_error": "Training error (%)"}


def _curve(records, key):
    """(iterations, values) of ``key`` in the records; errors (``train_error``, and
    ``val_acc`` as an error) in %."""
    xs, ys = [], []
    for r in records:
        if key in ("train_error", "val_acc"):
            value = error_percent(r, "train_acc" if key == "train_error" else key)
        else:
            value = r.get(key)
        if value is None:
            continue
        xs.append(r["iteration"])
        ys.append(value)
    return np.asarray(xs), np.asarray(ys)


def _draw(ax, curves, colour, style):
    """Seeds thin, their mean (over the iterations all seeds reached) thick."""
    for xs, ys in curves:
        ax.plot(xs, ys, style, color=colour, linewidth=0.7, alpha=0.45)
    length = min(len(xs) for xs, _ in curves)
    if length:
        mean = np.mean([ys[:length] for _, ys in curves], axis=0)
        ax.plot(curves[0][0][:length], mean, style, color=colour, linewidth=2.2,
                marker="o" if length == 1 else None)


def _save(fig, out_prefix):
    paths = [f"{out_prefix}.png", f"{out_prefix}.pdf"]
    for path in paths:
        save_figure(fig, path)
    return paths


def seeded_runs_figure(groups, train_key="train_loss", title=None):
    """The figure of :func:`plot_seeded_runs`."""
    if train_key not in TRAIN_KEYS:
        raise ValueError(f"unknown training curve {train_key!r}: {', '.join(TRAIN_KEYS)}")
    fig = Figure(figsize=(7, 4.4))
    FigureCanvasAgg(fig)
    train_ax = fig.add_subplot(1, 1, 1)
    val_ax = train_ax if train_key == "train_error" else train_ax.twinx()
    evaluated = evaluated_set([d for run_dirs in groups.values() for d in run_dirs])
    handles = []
    for i, (label, run_dirs) in enumerate(groups.items()):
        runs = [read_metrics(d, required=True) for d in run_dirs]
        runs = [r for r in runs if r]
        if not runs:
            continue
        colour = f"C{i % 10}"
        _draw(train_ax, [_curve(r, train_key) for r in runs], colour, "--")
        _draw(val_ax, [_curve(r, "val_acc") for r in runs], colour, "-")
        handles.append(Line2D([], [], color=colour, linewidth=2.2,
                              label=f"{label} ({len(runs)} seeds)"))
    handles += [Line2D([], [], color="grey", linestyle="--", label=TRAIN_KEYS[train_key]),
                Line2D([], [], color="grey", label=f"{evaluated} error (%)")]
    train_ax.set_xlabel("Iterations")
    train_ax.set_ylabel(TRAIN_KEYS[train_key] + " (dashed)")
    if val_ax is not train_ax:
        val_ax.set_ylabel(f"{evaluated.capitalize()} error (%) (solid)")
    else:
        train_ax.set_ylabel(f"Error (%): training dashed, {evaluated} solid")
    train_ax.set_xlim(left=0)
    train_ax.grid(alpha=0.3)
    train_ax.legend(handles=handles, loc="upper right", fontsize="x-small")
    if title:
        train_ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return fig


def plot_seeded_runs(groups, out_prefix, train_key="train_loss", title=None):
    """Plot ``groups`` ({row label: [run dirs, one a seed]}) against iterations.

    ``train_key`` is ``train_loss`` (then the test or validation error gets a right-hand axis)
    or ``train_error`` (both errors share one axis in %, as in the 2015 paper's Fig. 6).
    Writes ``out_prefix.png`` and ``.pdf``; returns their paths.
    """
    return _save(seeded_runs_figure(groups, train_key, title), out_prefix)


def plot_seeded_profiles(groups, out_prefix, title=None):
    """Plot |dE/dx_l| against the unit l for ``groups`` ({row label: [one list of norms a
    seed]}) on a log scale, seeds thin and their geometric mean thick."""
    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, (label, profiles) in enumerate(groups.items()):
        if not profiles:
            continue
        colour = f"C{i % 10}"
        units = np.arange(1, len(profiles[0]) + 1)
        for p in profiles:
            ax.semilogy(units, p, color=colour, linewidth=0.7, alpha=0.45)
        ax.semilogy(units, np.exp(np.mean(np.log(profiles), axis=0)), color=colour,
                    linewidth=2.2, label=f"{label} ({len(profiles)} seeds)")
    ax.set_xlabel("residual unit l (input to output)")
    ax.set_ylabel(r"$\|\partial E / \partial x_l\|$")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small")
    if title:
        ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return _save(fig, out_prefix)
