"""Where a run stands, read from the files it writes (``training.rundir``): done, running,
queued, failed, stopped or not started, whether it was launched here or on Slurm; and what
a launcher records when an attempt ends. The local pool (``experiments.local``), Slurm
(``experiments.slurm``) and ``python3 -m experiments status`` all ask it."""
import os
import socket
import time

from training.rundir import (has_started, is_done, last_line, list_checkpoints, mark_done,
                             read_launch, record_launch)

# Slurm's job states, as the run states they mean; a job Slurm lists in none of them ended.
SLURM_ACTIVE = {"PENDING": "queued", "REQUEUED": "queued", "REQUEUE_HOLD": "queued",
                "REQUEUE_FED": "queued", "SUSPENDED": "queued", "CONFIGURING": "running",
                "RUNNING": "running", "COMPLETING": "running", "RESIZING": "running",
                "SIGNALING": "running", "STAGE_OUT": "running"}


def resume_command(run_dir, cmd):
    """``cmd``, with ``--resume`` where the run directory holds a checkpoint."""
    cmd = list(cmd)
    if list_checkpoints(run_dir) and "--resume" not in cmd:
        cmd.append("--resume")
    return cmd


def process_cmdline(pid):
    """The command line of process ``pid`` as recorded by /proc, None if unreadable."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def process_alive(info, key="pid"):
    """Whether the process recorded under ``key`` (pid or launcher_pid) of ``info`` (a
    ``training.rundir.LaunchRecord``) still runs (this host only)."""
    pid = getattr(info, key)
    if not pid or info.host != socket.gethostname():
        return None if pid else False  # None: it ran on another host, cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    recorded, now = getattr(info, f"{key}_cmdline"), process_cmdline(pid)
    return recorded is None or now is None or recorded == now


def run_state(run_dir, slurm=None):
    """Where a run stands: done, running, queued, failed, stopped (started, nothing runs it
    now, it resumes at the next launch) or not started.

    ``slurm`` maps job ids to Slurm's states (``slurm_states``); None where Slurm cannot be
    asked, then a Slurm run's last recorded state is believed.
    """
    if is_done(run_dir):
        return "done"
    info = read_launch(run_dir)
    state = info.state
    ended = "stopped" if has_started(run_dir) else "not started"
    if state == "failed":
        return "failed"
    if info.launcher == "slurm":
        if slurm is None:
            return state or ended
        active = SLURM_ACTIVE.get(slurm.get(info.job_id, ""))
        return active or ended
    if state == "running":
        alive = process_alive(info)
        return "running" if alive or alive is None else "stopped"
    if state == "queued":
        alive = process_alive(info, "launcher_pid")
        return "queued" if alive or alive is None else ended
    return ended


def finish(run_dir, cmd, returncode):
    """Record how an attempt ended; returns its failure ({"run_dir", "status",
    "last_line"}) or None when it succeeded."""
    if returncode == 0:
        mark_done(run_dir, cmd[1:])
        record_launch(run_dir, state="done", finished=time.time())
        return None
    failure = {"run_dir": run_dir, "status": returncode, "last_line": last_line(run_dir)}
    record_launch(run_dir, state="failed", exit_status=returncode,
                  last_line=failure["last_line"], finished=time.time())
    return failure


def describe_status(status):
    return f"killed by signal {-status}" if status < 0 else f"exit {status}"
