"""Tests of the local launcher: slots of cores and GPUs, concurrent runs, failures, Ctrl-C,
status and the report of a partial table."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from common.cli import UsageError
from experiments import launch, local, runstate, status
from tests.launch_support import (ROOT, ROWS, TABLE, experiments, generated_cifar, wait_for,
                                  without_timings)
from training.rundir import is_done, read_launch, read_metrics

TWO_CORES = pytest.mark.skipif(len(local.available_cores()) < 2,
                               reason="needs two cores for two runs at once")


def args(*argv):
    return launch.parse_launch_args(argv)


def test_slots_own_disjoint_cores_and_gpus():
    slots = local.local_slots(args("--gpus", "0,1,2,3", "--gpus-per-run", "2"), range(8))
    assert [(s.cores, s.gpus) for s in slots] == [((0, 1, 2, 3), ("0", "1")),
                                                 ((4, 5, 6, 7), ("2", "3"))]
    slots = local.local_slots(args("--jobs", "3"), range(8))
    assert [s.cores for s in slots] == [(0, 1), (2, 3), (4, 5)]
    assert local.local_slots(args(), [5, 7]) == [local.Slot((5, 7))]
    with pytest.raises(UsageError, match="--jobs 3 at 1 core\\(s\\) a run needs 3 cores; "
                                         "this process may use 2"):
        local.local_slots(args("--jobs", "3"), range(2))
    with pytest.raises(UsageError, match="--jobs 3 needs 6 GPUs at 2 a run; --gpus gives 4"):
        local.local_slots(args("--gpus", "0,1,2,3", "--gpus-per-run", "2", "--jobs", "3"),
                           range(8))
    with pytest.raises(UsageError, match="needs --gpus"):
        local.local_slots(args("--gpus-per-run", "1"), range(8))


# A stand-in for the training command: records what it was given, then sleeps.
PROBE = ("import json, os, sys, time; t = time.time(); time.sleep(float(sys.argv[1])); "
         "json.dump({'cores': sorted(os.sched_getaffinity(0)), 'threads': "
         "os.environ['OMP_NUM_THREADS'], 'argv': sys.argv[2:], 'start': t, "
         "'end': time.time()}, open(os.path.join(sys.argv[2], 'probe.json'), 'w')); "
         "print('probe done'); sys.exit(int(sys.argv[3]))")


def probe_runs(root, seconds, exits):
    return [(str(root / f"run{k}"), [sys.executable, "-c", PROBE, str(seconds),
                                     str(root / f"run{k}"), str(code)])
            for k, code in enumerate(exits)]


@TWO_CORES
def test_concurrent_runs_never_share_a_core_or_a_gpu(tmp_path):
    runs = probe_runs(tmp_path, 0.5, [0] * 4)
    logs = []
    failures = launch.launch(runs, args("--jobs", "2", "--gpus", "0,1,2,3",
                                        "--gpus-per-run", "2"), logs.append)
    assert failures == []
    probes = [json.load(open(os.path.join(d, "probe.json"))) for d, _ in runs]
    assert all(p["threads"] == "1" and len(p["cores"]) == 1 for p in probes)
    gpus = [p["argv"][p["argv"].index("--gpus") + 1] for p in probes]
    assert sorted(gpus) == ["0,1", "0,1", "2,3", "2,3"]
    overlapping = 0
    for i, a in enumerate(probes):
        for b in probes[i + 1:]:
            if a["start"] < b["end"] and b["start"] < a["end"]:
                overlapping += 1
                assert a["cores"] != b["cores"]
                assert gpus[probes.index(a)] != gpus[probes.index(b)]
    assert overlapping >= 2  # two at a time, four runs
    assert all(is_done(d) for d, _ in runs)
    assert all(open(os.path.join(d, "train.log")).read() == "probe done\n" for d, _ in runs)
    # A second launch finds them done.
    logs = []
    assert launch.launch(runs, args("--jobs", "2"), logs.append) == []
    assert logs == [f"{d}: done before, skipped" for d, _ in runs]


def test_a_failed_run_is_reported_and_the_others_go_on(tmp_path):
    runs = probe_runs(tmp_path, 0, [0, 3, 0])
    failures = launch.launch(runs, args(), lambda _: None)
    assert failures == [{"run_dir": runs[1][0], "status": 3, "last_line": "probe done"}]
    assert [is_done(d) for d, _ in runs] == [True, False, True]
    rows = status.table_status(str(tmp_path))
    assert [r["state"] for r in rows] == ["done", "failed", "done"]
    text = status.format_status(rows)
    assert f"{runs[1][0]}: failed (exit 3): probe done" in text
    assert text.endswith("3 run(s): 2 done, 1 failed")


def default_sigint():
    """Give the child Python's Ctrl-C handling even where the tests run in the background
    of a shell, which starts them with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_every_child_and_its_children(tmp_path):
    # Each run starts a grandchild in its process group, then waits.
    child = ("import subprocess, sys, time; "
             "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
             "print('grandchild', p.pid, flush=True); time.sleep(60)")
    runs = [(str(tmp_path / f"run{k}"), [sys.executable, "-c", child]) for k in range(2)]
    script = ("import sys; from common.cli import run_main; from experiments import launch; "
              f"runs = {runs!r}; run_main(lambda _: launch.launch(runs, "
              "launch.parse_launch_args(['--jobs', '2', '--cpus-per-run', '1'])), "
              "prog='launcher')")
    if len(local.available_cores()) < 2:
        pytest.skip("needs two cores for two runs at once")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, text=True,
                            preexec_fn=default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def grandchildren():
        found = []
        for d, _ in runs:
            log = os.path.join(d, "train.log")
            text = open(log).read() if os.path.exists(log) else ""
            found += [int(line.split()[1]) for line in text.splitlines()
                      if line.startswith("grandchild")]
        return found if len(found) == 2 else None

    pids = wait_for(grandchildren, 30, "both runs to start their grandchild")
    children = [read_launch(d).pid for d, _ in runs]
    assert [runstate.run_state(d) for d, _ in runs] == ["running", "running"]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.strip().endswith("launcher: interrupted")
    assert "interrupted: stopped 2 run(s)" in out
    for pid in pids + children:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)
    assert [runstate.run_state(d) for d, _ in runs] == ["not started", "not started"]


def _zombie(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] == "Z"


# ---- real training runs --------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return generated_cifar(tmp_path_factory.mktemp("data"))


def run_tiny_table(cifar, out, *launch_flags):
    """The tiny budget table through ``python3 -m experiments``; returns (wall s, output)."""
    tic = time.time()
    result = subprocess.run(experiments(*TABLE, "--data-dir", cifar, "--out", out,
                                        *launch_flags),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return time.time() - tic, result.stdout


def intervals(out):
    return [(info.started, info.finished) for info in
            (read_launch(os.path.join(out, "runs", row, "seed0")) for row in ROWS)]


@TWO_CORES
def test_jobs_2_runs_two_at_once_with_the_metrics_of_jobs_1(cifar, tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    _, printed = run_tiny_table(cifar, one, "--jobs", "1", "--cpus-per-run", "1")
    run_tiny_table(cifar, two, "--jobs", "2")
    (a0, a1), (b0, b1) = intervals(one)
    assert a1 <= b0 or b1 <= a0  # one at a time
    (a0, a1), (b0, b1) = intervals(two)
    assert a0 < b1 and b0 < a1  # at once
    cores = [read_launch(os.path.join(two, "runs", row, "seed0")).cores for row in ROWS]
    assert len(cores[0]) == 1 and cores[0] != cores[1]
    for row in ROWS:
        first = read_metrics(os.path.join(one, "runs", row, "seed0"))
        assert len(first) == 7 and first[-1]["iteration"] == 40  # 6 epochs and 4 batches
        assert without_timings(read_metrics(os.path.join(two, "runs", row, "seed0"))) == \
            without_timings(first)
    assert "| original_110 (ResNet-20) |" in printed and "Incomplete" not in printed


def test_failed_run_leaves_its_row_missing_and_the_command_fails(cifar, tmp_path):
    out = str(tmp_path / "out")
    result = subprocess.run(experiments(*TABLE, "--data-dir", cifar, "--out", out,
                                        "--rows", "original_110", "--num-classes", "5"),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == ("python -m experiments: 1 run(s) missing from the "
                                     "table: see the FAILED lines above")
    # flags are checked before the runs start; what contradicts the data, when a run reads it
    assert "FAILED" in result.stdout and "(exit 2): train_cifar.py: error: --num-classes 5: " \
        "the labels of" in result.stdout
    table = open(os.path.join(out, "table.md")).read()
    assert "Incomplete rows: original_110 (ResNet-20) (seed0 missing)." in table


def status_lines(out):
    result = subprocess.run(experiments("status", out), cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_status_and_report_of_a_table_in_progress(cifar, tmp_path):
    out = str(tmp_path / "out")
    proc = subprocess.Popen(experiments(*TABLE, "--data-dir", cifar, "--out", out,
                                        "--repeats", "2", "--jobs", "1"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    second = os.path.join(out, "runs", "original_110", "seed1")
    try:
        wait_for(lambda: len(read_metrics(second)) >= 2, 120, "2 epochs of the second run")
        during = status_lines(out)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert during[0].split() == ["row", "repeat", "state", "epochs", "val", "err", "%",
                                 "images/s", "ETA", "job"]
    done, running, *queued = [line.split() for line in during[1:5]]
    assert done[:4] == ["runs/original_110", "seed0", "done", "7/7"] and done[-1] == "-"
    assert running[:3] == ["runs/original_110", "seed1", "running"]
    assert 2 <= int(running[3].split("/")[0]) < 7 and running[3].endswith("/7")
    assert running[6].endswith("s") and running[7] == "pid"  # an ETA, the process id
    assert [q[:3] for q in queued] == [["runs/full_preact_110", "seed0", "queued"],
                                       ["runs/full_preact_110", "seed1", "queued"]]
    assert during[-1] == "4 run(s): 1 done, 1 running, 2 queued"
    after = status_lines(out)
    assert [line.split()[2] for line in after[1:5]] == ["done", "stopped", "not", "not"]
    assert after[-1] == "4 run(s): 1 done, 1 stopped, 2 not started"
    report = subprocess.run(experiments("table2", "--out", out, "--report"), cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    table = open(os.path.join(out, "table.md")).read()
    assert "| original_110 (ResNet-20) | 6.61 |" in table and " (1) |" in table
    assert ("Incomplete rows: original_110 (ResNet-20) (seed1 missing); full_preact_110 "
            "(ResNet-20) (seed0, seed1 missing).") in table
    assert open(os.path.join(out, "table.csv")).read().count("\n") == 3
    # Launched again, the table resumes the stopped run and starts the others.
    _, printed = run_tiny_table(cifar, out, "--repeats", "2", "--jobs", "2")
    assert "original_110/seed0: done before, skipped" in printed
    assert "original_110/seed1: resuming" in printed
    assert "Incomplete" not in open(os.path.join(out, "table.md")).read()
