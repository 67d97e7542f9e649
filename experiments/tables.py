"""The Identity Mappings paper's Tables 1-3: every row, the paper's CIFAR test error for it
(%, median of 5 runs; ``FAIL`` where the paper reports that training failed, i.e. an error
above 20 %), and the comparison of this project's runs with it.

Repeat k of a row trains with seed k in ``OUT/runs/<row>/seed<k>`` (``training.rundir``'s
layout of an experiment folder, as the findings' runs) through ``experiments.runner``;
``OUT/plan.json`` lists the table's runs; ``OUT/table.md``, ``OUT/table.csv`` and
``OUT/figure.{png,pdf}`` hold the comparison of the finished ones.
"""
import csv
import io
import os
import statistics
from collections import namedtuple

from common.files import write_text
from experiments.markdown import format_number
from experiments.runner import Row, branch_of, run_plan, train_command
from training.recipe import CIFAR
from training.rundir import (TABLE_CSV, TABLE_FIGURE, TABLE_MD, error_percent,
                             experiment_run_dir, finished_metrics, is_done, read_metrics,
                             read_plan)

FAIL = "fail"
FAIL_THRESHOLD = 20.0

Table = namedtuple("Table", "rows paper")  # [Row], {row name: the paper's error}


def table(*entries):
    """A Table from (row, paper error) pairs."""
    return Table([row for row, _ in entries], {row.name: error for row, error in entries})


def entry(name, paper_error, num_layers=110, unit="original", shortcut="identity",
          dataset="cifar10", **params):
    """A row of the paper and its error; its bottleneck units (from 164 layers on) are
    asked for by name."""
    bottleneck = True if branch_of(num_layers) == "bottleneck" else None
    return Row(name, num_layers, unit, shortcut, params, bottleneck=bottleneck,
               dataset=dataset), paper_error


TABLES = {
    # Table 1: shortcuts on ResNet-110 with original units, CIFAR-10.
    "table1": table(
        entry("original", 6.61),
        entry("constant_scaling_shortcut_only", FAIL, shortcut="constant_scaling", scale=0.5,
              scale_residual=False),
        entry("constant_scaling_both", 12.35, shortcut="constant_scaling", scale=0.5),
        *[entry(f"exclusive_gating_bg{-b}", FAIL, shortcut="exclusive_gating",
                gate_bias=float(b)) for b in (0, -1, -2, -3, -4, -5)],
        entry("exclusive_gating_bg6", 8.70, shortcut="exclusive_gating", gate_bias=-6.0),
        entry("exclusive_gating_bg7", 9.81, shortcut="exclusive_gating", gate_bias=-7.0),
        entry("shortcut_only_gating_bg0", 12.86, shortcut="shortcut_only_gating",
              gate_bias=0.0),
        entry("shortcut_only_gating_bg6", 6.91, shortcut="shortcut_only_gating",
              gate_bias=-6.0),
        entry("conv1x1", 12.22, shortcut="conv1x1"),
        entry("dropout", FAIL, shortcut="dropout", ratio=0.5)),
    # Table 2: activation placement (Fig. 4), ResNet-110 and ResNet-164, CIFAR-10.
    "table2": table(*[
        entry(f"{unit}_{depth}", error, num_layers=depth, unit=unit)
        for unit, errors in (("original", (6.61, 5.93)), ("bn_after_add", (8.17, 6.50)),
                             ("relu_before_add", (7.84, 6.14)),
                             ("relu_only_preact", (6.71, 5.91)), ("full_preact", (6.37, 5.46)))
        for depth, error in zip((110, 164), errors)]),
    # Table 3: original vs full pre-activation units, ResNet-164 and ResNet-1001.
    "table3": table(*[
        entry(f"{dataset}_{unit}_{depth}", error, num_layers=depth, unit=unit, dataset=dataset)
        for dataset, depth, errors in (("cifar10", 164, (5.93, 5.46)),
                                       ("cifar10", 1001, (7.61, 4.92)),
                                       ("cifar100", 164, (25.16, 24.33)),
                                       ("cifar100", 1001, (27.82, 22.71)))
        for unit, error in zip(("original", "full_preact"), errors)]),
}

# A budget run keeps the recipe's shape (steps at 1/2 and 3/4, warm-up share) on
# shallow nets of the same branch type.
BUDGET_DEPTHS = {"basic": 20, "bottleneck": 29}
BUDGET_WARNING = ("BUDGET RUN: fewer iterations, shallower nets and a subset of the data; "
                  "not comparable with the paper")


def get_table(name):
    """The Table ``name``; ``ValueError`` listing the valid names."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; valid: {', '.join(TABLES)}")
    return TABLES[name]


def select_rows(name, rows=None):
    """The rows of table ``name`` named in ``rows`` (all when None), in table order."""
    every = get_table(name).rows
    if not rows:
        return list(every)
    names = [r.name for r in every]
    unknown = [r for r in rows if r not in names]
    if unknown:
        raise ValueError(f"{name} has no row {', '.join(unknown)}; its rows: {', '.join(names)}")
    return [r for r in every if r.name in rows]


def budget_depth(row):
    return BUDGET_DEPTHS[row.branch]


def run_dirs(out_dir, row, repeats):
    return [experiment_run_dir(out_dir, row.name, k) for k in range(repeats)]


def table_runs(out_dir, data_dir, rows, repeats, budget=None, budget_examples=None,
               extra_args=()):
    """[(run_dir, train command)] of every repeat of ``rows`` (seed k for repeat k): the
    paper's recipe, or with a ``budget`` the recipe scaled to that many iterations on a
    net of the row's branch type (``budget_depth``) and ``budget_examples`` images.
    Every run warms up as the paper's Table runs did (400 of 64k iterations at 0.01)."""
    schedule = CIFAR.scaled(budget)
    data = ["--num-examples", str(budget_examples)] if budget and budget_examples else []
    return [(run_dir, train_command(row, run_dir, data_dir, seed, schedule,
                                    depth=budget_depth(row) if budget else None,
                                    data_flags=data, extra_args=extra_args))
            for row in rows for seed, run_dir in enumerate(run_dirs(out_dir, row, repeats))]


def final_error(run_dir):
    """Test error (%) at the end of a finished run, or None before it finished."""
    records = finished_metrics(run_dir)
    return error_percent(records[-1]) if records else None


def row_result(row, paper_error, dirs):
    """Summary of a row's finished repeats: median, mean, spread, paper, difference, and
    the repeats still missing (not done)."""
    errors = [e for e in map(final_error, dirs) if e is not None]
    median = statistics.median(errors) if errors else None
    if paper_error == FAIL:
        difference = None if median is None else \
            ("fails too" if median > FAIL_THRESHOLD else "does not fail")
    else:
        difference = None if median is None else median - paper_error
    return {"row": row.name, "paper": paper_error, "median": median,
            "mean": statistics.fmean(errors) if errors else None,
            "std": statistics.pstdev(errors) if len(errors) > 1 else 0.0 if errors else None,
            "runs": len(errors), "difference": difference,
            "missing": [os.path.basename(d) for d in dirs if not is_done(d)]}


def markdown_table(results, title):
    lines = [f"### {title}", "", "| row | paper error (%) | this run's error (%) "
             "| mean ± std (runs) | difference |", "|---|---|---|---|---|"]
    for r in results:
        paper = "fail (> 20)" if r["paper"] == FAIL else format_number(r["paper"])
        median, mean, std = (format_number(r[k]) for k in ("median", "mean", "std"))
        difference = format_number(r["difference"], signed=True)
        lines.append(f"| {r['row']} | {paper} | {median} | {mean} ± {std} ({r['runs']}) | "
                     f"{difference} |")
    incomplete = [f"{r['row']} ({', '.join(r['missing'])} missing)" for r in results
                  if r.get("missing")]
    if incomplete:
        lines += ["", "Incomplete rows: " + "; ".join(incomplete) + "."]
    return "\n".join(lines) + "\n"


def csv_table(results):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "paper_error", "error_median", "error_mean", "error_std", "runs",
                     "difference"])
    for r in results:
        writer.writerow([r["row"], r["paper"], r["median"], r["mean"], r["std"], r["runs"],
                         r["difference"]])
    return out.getvalue()


def row_label(row, budget):
    """The row's name, with the depth actually trained in a budget run."""
    return row.name if budget is None else f"{row.name} (ResNet-{budget_depth(row)})"


def summarize(name, rows, out_dir, repeats, budget=None):
    """Write table.md, table.csv and figure.png/pdf for the rows run so far."""
    from plots import plot_runs
    paper = get_table(name).paper
    results = [dict(row_result(r, paper[r.name], run_dirs(out_dir, r, repeats)),
                    row=row_label(r, budget)) for r in rows]
    title = f"{name}, CIFAR test error, median of {repeats} run(s)"
    if budget is not None:
        title += f" - {BUDGET_WARNING}"
    write_text(os.path.join(out_dir, TABLE_MD), markdown_table(results, title))
    write_text(os.path.join(out_dir, TABLE_CSV), csv_table(results))
    started = [(row_label(r, budget), d) for r in rows
               for d in run_dirs(out_dir, r, repeats)[:1] if read_metrics(d)]
    figure = []
    if started:
        figure = plot_runs([d for _, d in started], os.path.join(out_dir, TABLE_FIGURE),
                           x="iteration", labels=[label for label, _ in started],
                           title=f"{name}{' (budget run, not comparable)' if budget else ''}")
    return results, figure


def run_table(name, out_dir, data_dir, rows=None, repeats=1, budget=None,
              budget_examples=5000, extra_args=(), log=print, launch_config=None):
    """Train every repeat of the chosen rows of table ``name`` (``experiments.runner``),
    then write the comparison of the finished runs. A failed run is logged and left out
    of the table (which names it missing); with Slurm this returns once the jobs are
    submitted."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be >= 1 iterations, got {budget}")
    chosen = select_rows(name, rows)
    runs = table_runs(out_dir, data_dir, chosen, repeats, budget, budget_examples, extra_args)
    plan = {"table": name, "rows": [r.name for r in chosen], "repeats": repeats,
            "budget": budget}
    return run_plan(out_dir, plan, runs, launch_config, log,
                    warning=BUDGET_WARNING if budget is not None else None,
                    report=lambda: summarize(name, chosen, out_dir, repeats, budget))


def report_table(name, out_dir, rows=None, repeats=1, budget=None):
    """Rebuild table.md, table.csv and the figure from the finished runs; the rows, repeats
    and budget come from OUT/plan.json when the table was launched, else from the
    arguments."""
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"no folder {out_dir}")
    plan = read_plan(out_dir)
    if plan is not None:
        if plan.get("table") != name:
            raise ValueError(f"{out_dir} holds {plan.get('table') or 'no table'}, not {name}")
        rows, repeats, budget = plan["rows"], plan["repeats"], plan["budget"]
    return summarize(name, select_rows(name, rows), out_dir, repeats, budget)


def list_rows():
    """Every table's rows, one line each, with the paper's error."""
    lines = []
    for name, t in TABLES.items():
        lines.append(name)
        for r in t.rows:
            paper = "fail" if t.paper[r.name] == FAIL else f"{t.paper[r.name]:.2f}"
            params = " ".join(f"{k}={v}" for k, v in r.params.items())
            lines.append(f"  {r.name:34s} {r.dataset:8s} ResNet-{r.num_layers:<5d} "
                         f"{r.unit:17s} {r.shortcut} {params}  paper {paper}")
    return "\n".join(lines)
