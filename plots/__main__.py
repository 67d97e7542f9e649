"""``python -m plots RUN [RUN...] --out PREFIX``: curves and a test-error table."""
import argparse

from common.cli import UsageError, run_main
from plots.curves import X_AXES, plot_runs, results_table
from plots.output import report


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m plots", description=__doc__.split(":")[1].strip())
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", required=True, metavar="PREFIX",
                   help="write PREFIX.png and PREFIX.pdf")
    p.add_argument("--x", choices=sorted(X_AXES), default="epoch", help="x axis (default epoch)")
    p.add_argument("--label", action="append", dest="labels", metavar="TEXT",
                   help="legend label, once per run in order (default: from config.json)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--train-error", action="store_true", help="training error instead of "
                   "loss, on the test error's axis (the 2015 paper's Fig. 6)")
    p.add_argument("--table", metavar="FILE", help="also write the markdown table to FILE")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        raise UsageError(f"--label given {len(args.labels)} times for {len(args.runs)} runs")
    train_key = "train_error" if args.train_error else "train_loss"
    paths = plot_runs(args.runs, args.out, x=args.x, labels=args.labels, title=args.title,
                      train_key=train_key)
    report(paths, results_table(args.runs, labels=args.labels), args.table)
    return 0


if __name__ == "__main__":
    run_main(main, prog="python -m plots")
