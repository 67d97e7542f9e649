"""Run rows of the paper's tables and compare them with the paper.

Each row's repeats train in ``OUT/<row>/run<k>`` through ``train_cifar`` (one process each,
so a killed table resumes: finished runs are skipped, unfinished ones resume from their
newest checkpoint), started by ``experiments.launch`` (``--jobs N`` at once here, or a
Slurm job array). ``OUT/plan.json`` lists the table's runs; ``OUT/table.md``,
``OUT/table.csv`` and ``OUT/figure.{png,pdf}`` hold the comparison of the finished ones.
"""
import csv
import io
import os
import statistics
import subprocess
import sys

from common.files import lock_dir, write_json, write_text
from experiments.launch import (DONE, RUNNER_LOCK, describe_status, is_done, launch,
                                parse_launch_args)
from experiments.presets import FAIL, FAIL_THRESHOLD, RECIPE, select_rows
from experiments.status import PLAN, read_plan
from training.checkpoint import list_checkpoints, read_metrics

# A budget run keeps the recipe's shape (steps at 1/2 and 3/4, warm-up share) on
# shallow nets of the same branch type.
BUDGET_DEPTHS = {"basic": 20, "bottleneck": 29}
BUDGET_WARNING = ("BUDGET RUN: fewer iterations, shallower nets and a subset of the data; "
                  "not comparable with the paper")


def budget_depth(num_layers):
    return BUDGET_DEPTHS["bottleneck" if num_layers >= 164 else "basic"]


def schedule(budget=None):
    """(iterations, lr steps, warm-up iterations) of the paper's recipe, or shrunk to
    ``budget`` iterations."""
    total = RECIPE["num_iterations"]
    if budget is None:
        return total, RECIPE["lr_step_iterations"], RECIPE["warmup_iterations"]
    steps = tuple(max(1, round(s * budget / total)) for s in RECIPE["lr_step_iterations"])
    return budget, steps, max(1, round(RECIPE["warmup_iterations"] * budget / total))


def train_command(preset, run_dir, data_dir, seed, budget=None, budget_examples=None,
                  extra_args=()):
    """The ``train_cifar`` command line of one run of ``preset``."""
    iterations, steps, warmup = schedule(budget)
    depth = preset.num_layers if budget is None else budget_depth(preset.num_layers)
    cmd = [sys.executable, "-m", "train_cifar", "--data-dir", data_dir,
           "--dataset", preset.dataset, "--output-dir", run_dir, "--seed", str(seed),
           "--num-layers", str(depth), "--unit", preset.unit, "--shortcut", preset.shortcut,
           "--num-iters", str(iterations), "--lr-step-iters", ",".join(map(str, steps)),
           "--warmup-iters", str(warmup), "--warmup-lr", str(RECIPE["warmup_lr"]),
           "--lr", str(RECIPE["lr"]), "--mom", str(RECIPE["mom"]), "--wd", str(RECIPE["wd"]),
           "--batch-size", str(RECIPE["batch_size"]), "--optimizer", RECIPE["optimizer"]]
    if preset.num_layers >= 164:
        cmd += ["--bottleneck", "yes"]
    for name, value in preset.shortcut_params.items():
        cmd += ["--shortcut-param", f"{name}={value}"]
    if budget is not None and budget_examples:
        cmd += ["--num-examples", str(budget_examples)]
    if list_checkpoints(run_dir):
        cmd.append("--resume")
    return cmd + list(extra_args)


def run_dirs(out_dir, preset, repeats):
    return [os.path.join(out_dir, preset.name, f"run{k}") for k in range(repeats)]


def run_one(cmd, run_dir, log=print):
    """Train one run to its end, unless it finished before; mark it done."""
    if is_done(run_dir):
        log(f"{run_dir}: done before, skipped")
        return
    os.makedirs(run_dir, exist_ok=True)
    log(f"{run_dir}: {'resuming' if '--resume' in cmd else 'starting'}")
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise ChildProcessError(f"training {run_dir} failed (exit {result.returncode}); "
                           "run the table again to resume it")
    write_json(os.path.join(run_dir, DONE), {"command": cmd[1:]})


def final_error(run_dir):
    """Test error (%) at the end of a run, or None before its first epoch."""
    records = read_metrics(run_dir)
    return None if not records else 100.0 * (1.0 - records[-1]["val_acc"])


def row_result(preset, dirs):
    """Summary of a row's finished repeats: median, mean, spread, paper, difference, and
    the repeats still missing (not done)."""
    errors = [e for e in (final_error(d) for d in dirs if is_done(d)) if e is not None]
    median = statistics.median(errors) if errors else None
    if preset.paper_error == FAIL:
        difference = None if median is None else \
            ("fails too" if median > FAIL_THRESHOLD else "does not fail")
    else:
        difference = None if median is None else median - preset.paper_error
    return {"row": preset.name, "paper": preset.paper_error, "median": median,
            "mean": statistics.fmean(errors) if errors else None,
            "std": statistics.pstdev(errors) if len(errors) > 1 else 0.0 if errors else None,
            "runs": len(errors), "difference": difference,
            "missing": [os.path.basename(d) for d in dirs if not is_done(d)]}


def fmt(value, signed=False):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def markdown_table(results, title):
    lines = [f"### {title}", "", "| row | paper error (%) | this run's error (%) "
             "| mean ± std (runs) | difference |", "|---|---|---|---|---|"]
    for r in results:
        paper = "fail (> 20)" if r["paper"] == FAIL else fmt(r["paper"])
        lines.append(f"| {r['row']} | {paper} | {fmt(r['median'])} | {fmt(r['mean'])} ± "
                     f"{fmt(r['std'])} ({r['runs']}) | {fmt(r['difference'], signed=True)} |")
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


def row_label(preset, budget):
    """The row's name, with the depth actually trained in a budget run."""
    return preset.name if budget is None else \
        f"{preset.name} (ResNet-{budget_depth(preset.num_layers)})"


def summarize(table, presets, out_dir, repeats, budget=None):
    """Write table.md, table.csv and figure.png/pdf for the rows run so far."""
    from plots import plot_runs
    results = [dict(row_result(p, run_dirs(out_dir, p, repeats)), row=row_label(p, budget))
               for p in presets]
    title = f"{table}, CIFAR test error, median of {repeats} run(s)"
    if budget is not None:
        title += f" - {BUDGET_WARNING}"
    write_text(os.path.join(out_dir, "table.md"), markdown_table(results, title))
    write_text(os.path.join(out_dir, "table.csv"), csv_table(results))
    started = [(row_label(p, budget), d) for p in presets
               for d in run_dirs(out_dir, p, repeats)[:1] if read_metrics(d)]
    figure = []
    if started:
        figure = plot_runs([d for _, d in started], os.path.join(out_dir, "figure"),
                           x="iteration", labels=[name for name, _ in started],
                           title=f"{table}{' (budget run, not comparable)' if budget else ''}")
    return results, figure


def table_runs(out_dir, data_dir, presets, repeats, budget, budget_examples,
               extra_args):
    """[(run_dir, train command)] of every repeat of ``presets``, row by row."""
    return [(run_dir, train_command(p, run_dir, data_dir, seed, budget, budget_examples,
                                    extra_args))
            for p in presets for seed, run_dir in enumerate(run_dirs(out_dir, p, repeats))]


def run_table(table, out_dir, data_dir, rows=None, repeats=1, budget=None,
              budget_examples=5000, extra_args=(), log=print, launch_args=None):
    """Train every repeat of the chosen rows of ``table`` as ``launch_args`` (the parsed
    launch flags; default: one run at a time here) say, then write the comparison of the
    finished runs. A failed run is logged and left out of the table (which names it
    missing); with Slurm this returns once the jobs are submitted."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be >= 1 iterations, got {budget}")
    presets = select_rows(table, rows)
    # one runner per OUT at a time (each run's training locks its own folder)
    with lock_dir(out_dir, RUNNER_LOCK):
        if budget is not None:
            log(BUDGET_WARNING)
        runs = table_runs(out_dir, data_dir, presets, repeats, budget, budget_examples,
                          extra_args)
        write_json(os.path.join(out_dir, PLAN),
                   {"table": table, "rows": [p.name for p in presets], "repeats": repeats,
                    "budget": budget, "runs": [os.path.relpath(d, out_dir) for d, _ in runs]})
        failures = launch(runs, launch_args or parse_launch_args(), log,
                          slurm_folder=os.path.join(out_dir, "slurm"))
        for f in failures:
            log(f"FAILED {f['run_dir']} ({describe_status(f['status'])}): {f['last_line']}")
        return summarize(table, presets, out_dir, repeats, budget)


def report_table(table, out_dir, rows=None, repeats=1, budget=None):
    """Rebuild table.md, table.csv and the figure from the finished runs; the rows, repeats
    and budget come from OUT/plan.json when the table was launched, else from the
    arguments."""
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"no folder {out_dir}")
    plan = read_plan(out_dir)
    if plan is not None:
        if plan["table"] != table:
            raise ValueError(f"{out_dir} holds {plan['table']}, not {table}")
        rows, repeats, budget = plan["rows"], plan["repeats"], plan["budget"]
    presets = select_rows(table, rows)
    return summarize(table, presets, out_dir, repeats, budget)
