"""Where the runs of an experiments folder stand, read from the files the runs write.

    python3 -m experiments status OUT

One line per run: row, repeat, state, epochs done / planned, last validation error,
images/s, ETA, and how it was launched (process id, or Slurm job id and Slurm's state).
The runs are those of ``OUT/plan.json`` (a table) and every folder under OUT that holds a
run's files, so it works on a table in progress, on one nobody runs, and on other sweeps.
"""
import logging
import os
import statistics

from experiments.runstate import describe_status, run_state
from experiments.slurm import slurm_states
from training.rundir import (CONFIG, DONE, LAUNCH, METRICS, error_percent, read_launch,
                             read_metrics, read_plan, read_run)

RUN_FILES = (DONE, LAUNCH, CONFIG, METRICS)
log = logging.getLogger(__name__)


def find_runs(out_dir):
    """Run directories under ``out_dir``: the plan's first, in its order, then the rest."""
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"no folder {out_dir}")
    plan = read_plan(out_dir)
    runs = [os.path.join(out_dir, d) for d in plan["runs"]] if plan else []
    seen = {os.path.normpath(d) for d in runs}
    found = []
    for folder, _, files in os.walk(out_dir):
        if any(f in files for f in RUN_FILES) and os.path.normpath(folder) not in seen:
            found.append(folder)
    return runs + sorted(found)


def planned_epochs(run_dir):
    """The epochs the run's config.json plans, None where it has none or is corrupt (said
    in a warning)."""
    try:
        record = read_run(run_dir)
    except ValueError as err:
        log.warning("%s; its planned epochs are not shown", err)
        return None
    return None if record is None else record.planned_epochs


def run_status(out_dir, run_dir, slurm=None):
    """What ``status`` shows of one run, as a dict."""
    records = read_metrics(run_dir)
    info = read_launch(run_dir)
    state = run_state(run_dir, slurm)
    planned = planned_epochs(run_dir)
    last = records[-1] if records else {}
    eta = None
    if state == "running" and planned and records:
        eta = (planned - len(records)) * statistics.median(r["epoch_seconds"] for r in records)
    job = "-"
    if info.launcher == "slurm":
        job = f"{info.job_id} {(slurm or {}).get(info.job_id, '-')}"
    elif state == "running" and info.pid:
        job = f"pid {info.pid}"
    row = os.path.relpath(os.path.dirname(os.path.abspath(run_dir)), os.path.abspath(out_dir))
    return {"row": row, "repeat": os.path.basename(os.path.normpath(run_dir)),
            "run_dir": run_dir, "state": state, "epochs": len(records), "planned": planned,
            "val_error": error_percent(last),
            "images_per_sec": last.get("samples_per_sec"), "eta_seconds": eta, "job": job,
            "failure": (describe_status(info.exit_status), info.last_line or "")
            if state == "failed" and info.exit_status is not None else None}


def table_status(out_dir):
    """``run_status`` of every run under ``out_dir``."""
    runs = find_runs(out_dir)
    launches = [read_launch(d) for d in runs]
    jobs = [info.job_id for info in launches if info.launcher == "slurm"]
    slurm = slurm_states(jobs) if jobs else {}
    return [run_status(out_dir, d, slurm) for d in runs]


def duration(seconds):
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_status(rows):
    """The status lines: a header, one line per run, the failures' last log lines and a
    count of the states."""
    header = ("row", "repeat", "state", "epochs", "val err %", "images/s", "ETA", "job")
    lines = [[r["row"], r["repeat"], r["state"],
              f"{r['epochs']}/{r['planned'] if r['planned'] else '-'}",
              "-" if r["val_error"] is None else f"{r['val_error']:.2f}",
              "-" if r["images_per_sec"] is None else f"{r['images_per_sec']:.0f}",
              duration(r["eta_seconds"]), r["job"]] for r in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip()
           for line in [header] + lines]
    for r in rows:
        if r["failure"]:
            out.append(f"{r['run_dir']}: failed ({r['failure'][0]}): {r['failure'][1]}")
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    out.append(f"{len(rows)} run(s): " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(out)
