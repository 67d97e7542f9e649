"""Tests of ``--launcher slurm`` on a real one-node Slurm cluster (munged, slurmctld and
slurmd started for the session): a table runs to its end, a cancelled job resubmitted and
a preempted job requeued both resume from their checkpoints and end with the metrics of an
uninterrupted run, and ``status`` follows the states."""
import os
import subprocess
import time

import pytest

from experiments import runstate, status
from experiments.slurm import slurm_states
from tests.launch_support import (ROOT, ROWS, TABLE, experiments, generated_cifar, wait_for,
                                  without_timings)
from tests.slurm_cluster import SlurmCluster, why_not_available
from training.rundir import read_launch, read_metrics, record_launch


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running one-node cluster; SLURM_CONF points at it for the whole session."""
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("submitit", reason="submitit is missing (pip install -e '.[test]')")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    before = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
    os.environ.update(SLURM_CONF=cluster.conf, PATH=cluster.env["PATH"])
    yield cluster
    cluster.stop()
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return generated_cifar(tmp_path_factory.mktemp("data"))


def submit(cluster, cifar, out, *flags):
    """Submit the tiny table (or ``--rows``) through Slurm; returns what it printed."""
    result = subprocess.run(experiments(*TABLE, "--data-dir", cifar, "--out", out,
                                        "--launcher", "slurm", "--cpus-per-run", "1",
                                        "--time", "10", *flags),
                            cwd=ROOT, env=cluster.env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def follow(out, until, timeout, seen):
    """Poll ``status`` of ``out`` until ``until(states)``; every new tuple of states goes
    into ``seen``."""
    def check():
        states = tuple(r["state"] for r in status.table_status(out))
        if not seen or seen[-1] != states:
            seen.append(states)
        return until(states)
    wait_for(check, timeout, f"the runs of {out} (states seen: {seen})")


def all_done(states):
    return all(s == "done" for s in states)


@pytest.fixture(scope="module")
def slurm_table(slurm, cifar, tmp_path_factory):
    """The tiny table run to its end through Slurm: (out, printed, states seen)."""
    out = str(tmp_path_factory.mktemp("slurm_table") / "table2")
    printed = submit(slurm, cifar, out)
    seen = []
    follow(out, all_done, 150, seen)
    return out, printed, seen


def test_a_table_through_slurm_runs_to_its_table(slurm, slurm_table):
    out, printed, seen = slurm_table
    jobs = [read_launch(os.path.join(out, "runs", row, "seed0")).job_id for row in ROWS]
    array = jobs[0].split("_")[0]
    assert jobs == [f"{array}_0", f"{array}_1"]  # one job array for the table
    for row, job in zip(ROWS, jobs):
        assert f"{row}/seed0: submitted as Slurm job {job}" in printed
    assert f"follow with: python3 -m experiments status {out}" in printed
    assert set(seen[0]) <= {"queued", "running"} and seen[-1] == ("done", "done")
    assert any("running" in states for states in seen)
    for row in ROWS:
        run = os.path.join(out, "runs", row, "seed0")
        assert "epoch 7/7" in open(os.path.join(run, "train.log")).read()
        assert [r["epoch"] for r in read_metrics(run)] == list(range(1, 8))
        assert read_launch(run).attempts == 1
    report = subprocess.run(experiments("table2", "--out", out, "--report"), cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    table = open(os.path.join(out, "table.md")).read()
    assert "| original_110 (ResNet-20) | 6.61 | " in table
    assert "| full_preact_110 (ResNet-20) | 6.37 | " in table
    assert " (1) |" in table and "Incomplete" not in table
    text = status.format_status(status.table_status(out))
    assert text.splitlines()[1].split()[-2] == jobs[0] and text.endswith("2 run(s): 2 done")


def run_one_row(slurm, cifar, tmp_path, interrupt):
    """Submit one row and ``interrupt(job id)`` after its second epoch; returns (out, run
    directory, job id, states seen)."""
    out = str(tmp_path / "table2")
    submit(slurm, cifar, out, "--rows", ROWS[0])
    run = os.path.join(out, "runs", ROWS[0], "seed0")
    seen = []
    follow(out, lambda states: len(read_metrics(run)) >= 2, 90, seen)
    job = read_launch(run).job_id
    assert len(read_metrics(run)) < 7, "the run ended before it could be interrupted"
    interrupt(job)
    return out, run, job, seen


def test_a_cancelled_job_resubmitted_resumes_from_its_checkpoint(slurm, slurm_table, cifar,
                                                                 tmp_path):
    out, run, job, seen = run_one_row(
        slurm, cifar, tmp_path,
        lambda job: subprocess.run(["scancel", job], env=slurm.env, check=True))
    follow(out, lambda states: states == ("stopped",), 60, seen)
    row = status.table_status(out)[0]
    assert row["state"] == "stopped" and 2 <= row["epochs"] < 7
    printed = submit(slurm, cifar, out, "--rows", ROWS[0])
    again = read_launch(run).job_id
    assert again != job and f"submitted as Slurm job {again}" in printed
    follow(out, all_done, 90, seen)
    assert ("queued",) in seen[:2] or ("running",) in seen[:2]
    assert ("stopped",) in seen and seen[-1] == ("done",)
    log = open(os.path.join(run, "train.log")).read()
    assert f"resuming {run} after epoch" in log
    reference = os.path.join(slurm_table[0], "runs", ROWS[0], "seed0")
    assert without_timings(read_metrics(run)) == without_timings(read_metrics(reference))


def test_a_preempted_job_is_requeued_and_resumes(slurm, slurm_table, cifar, tmp_path):
    # Slurm's preemption and time-limit warning: SIGUSR2 to the job's steps.
    out, run, job, seen = run_one_row(
        slurm, cifar, tmp_path,
        lambda job: subprocess.run(["scancel", "--signal=USR2", job], env=slurm.env,
                                   check=True))
    # submitit requeued it: queued again, held by Slurm for its fixed two minutes after a
    # requeue, which the test lifts. Slurm sets that hold as the requeue completes, which may
    # come after the job already shows as queued, so the test lifts it while it is queued.
    # It names a start two seconds on, the same each time: slurmd refuses to launch a job in
    # the second (its credentials' resolution) in which that job was killed.
    follow(out, lambda states: states == ("queued",), 60, seen)
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 2))

    def released(states):
        if states == ("queued",):
            subprocess.run(["scontrol", "update", f"JobId={job}", f"StartTime={start}"],
                           env=slurm.env, capture_output=True)
        return all_done(states)
    follow(out, released, 90, seen)
    assert seen[-3:] == [("queued",), ("running",), ("done",)]
    info = read_launch(run)
    assert info.job_id == job and info.attempts == 2  # the same job, run twice
    assert "Requeued job" in open(info.slurm_log).read()
    assert f"resuming {run} after epoch" in open(os.path.join(run, "train.log")).read()
    reference = os.path.join(slurm_table[0], "runs", ROWS[0], "seed0")
    assert without_timings(read_metrics(run)) == without_timings(read_metrics(reference))


def test_status_without_slurm_believes_the_files(tmp_path):
    run = str(tmp_path / "row" / "run0")
    record_launch(run, launcher="slurm", state="queued", job_id="17_3")
    assert runstate.run_state(run, None) == "queued"
    assert runstate.run_state(run, {"17_3": "RUNNING"}) == "running"
    assert runstate.run_state(run, {}) == "not started"  # Slurm no longer lists it
    assert slurm_states([]) == {}
