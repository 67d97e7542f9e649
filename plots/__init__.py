"""Training curves (the paper's Fig. 6 style) and result tables from run directories."""
from plots.curves import draw_curves, plot_runs, results_table
from plots.runs import run_label

__all__ = ["draw_curves", "plot_runs", "results_table", "run_label"]
