"""Many runs at once on this machine: a pool of slots (``--jobs``), each owning a disjoint
set of cores (its affinity mask, ``OMP_NUM_THREADS`` set to their number) and, with
``--gpus``, a disjoint set of GPUs; a run starts only in a free slot, so no two runs ever
share a core or a GPU. Each run's output is appended to its ``train.log`` and its state
recorded in its ``launch.json`` (``experiments.runstate``)."""
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from common.cli import UsageError
from experiments.runstate import (describe_status, finish, process_cmdline, resume_command,
                                  run_state)
from training.rundir import log_path, read_launch, record_launch

POLL_SECONDS = 0.2
STOP_SECONDS = 10  # how long stopped children get to exit before SIGKILL


@dataclass(frozen=True)
class Slot:
    """What one concurrent run owns: cores (its affinity mask) and GPUs."""
    cores: tuple
    gpus: tuple = ()

    def describe(self):
        gpus = f", GPUs {','.join(self.gpus)}" if self.gpus else ""
        return f"cores {','.join(map(str, self.cores))}{gpus}"


def available_cores():
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def local_slots(config, cores=None):
    """Disjoint (cores, GPUs) shares of this machine, one per concurrent run, as ``config``
    (an ``experiments.launch.LaunchConfig``) asks."""
    cores = available_cores() if cores is None else list(cores)
    gpus = list(config.gpus)
    per_run = config.gpus_per_run or 1
    if config.gpus_per_run and not gpus:
        raise UsageError("--gpus-per-run needs --gpus (this machine's GPUs, e.g. 0,1,2,3)")
    groups = [tuple(gpus[i:i + per_run]) for i in range(0, len(gpus) - per_run + 1, per_run)]
    if gpus and not groups:
        raise UsageError(f"--gpus-per-run {per_run} exceeds the {len(gpus)} GPU(s) of --gpus")
    jobs = config.jobs or (len(groups) if gpus else 1)
    if gpus and jobs > len(groups):
        raise UsageError(f"--jobs {jobs} needs {jobs * per_run} GPUs at {per_run} a run; "
                         f"--gpus gives {len(gpus)}")
    cpus = config.cpus_per_run or len(cores) // jobs
    if cpus < 1 or jobs * cpus > len(cores):
        raise UsageError(f"--jobs {jobs} at {cpus or 1} core(s) a run needs "
                         f"{jobs * max(cpus, 1)} cores; this process may use {len(cores)}")
    return [Slot(tuple(cores[i * cpus:(i + 1) * cpus]), groups[i] if gpus else ())
            for i in range(jobs)]


def start_local(run_dir, cmd, slot):
    """Start ``cmd`` in a process group of its own, pinned to the slot's cores, its output
    appended to the run's train.log."""
    env = dict(os.environ, OMP_NUM_THREADS=str(len(slot.cores)))
    cores = set(slot.cores)

    def pin():
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)

    with open(log_path(run_dir), "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, preexec_fn=pin,
                                start_new_session=True)


def stop_processes(procs):
    """SIGINT every process group, SIGKILL those still there after STOP_SECONDS."""
    for proc in procs:
        with_group(proc, signal.SIGINT)
    deadline = time.time() + STOP_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
        with_group(proc, signal.SIGKILL)  # also the group's leftovers
        proc.wait()


def with_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_local(runs, config, log=print):
    """Keep one run going in every slot of ``config`` (a LaunchConfig) until all have
    ended; returns the failures."""
    slots = local_slots(config)
    me = {"launcher": "local", "host": socket.gethostname(), "launcher_pid": os.getpid(),
          "launcher_pid_cmdline": process_cmdline(os.getpid())}
    pending = []
    for run_dir, cmd in runs:
        state = run_state(run_dir)
        if state == "done":
            log(f"{run_dir}: done before, skipped")
        elif state in ("running", "queued"):
            log(f"{run_dir}: {state} elsewhere ({read_launch(run_dir).host}), skipped")
        else:
            record_launch(run_dir, state="queued", **me)
            pending.append((run_dir, cmd))
    if pending:
        log(f"{len(slots)} run(s) at once: " + "; ".join(s.describe() for s in slots))
    free, running, failures = list(slots), {}, []
    previous = None
    if hasattr(signal, "SIGTERM") and _main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while pending or running:
            while free and pending:
                run_dir, cmd = pending.pop(0)
                slot = free.pop(0)
                cmd = resume_command(run_dir, cmd)
                if slot.gpus:
                    cmd += ["--gpus", ",".join(slot.gpus)]
                log(f"{run_dir}: {'resuming' if '--resume' in cmd else 'starting'}")
                proc = start_local(run_dir, cmd, slot)
                record_launch(run_dir, state="running", pid=proc.pid,
                              pid_cmdline="\0".join(cmd) + "\0", cores=list(slot.cores),
                              gpus=list(slot.gpus), started=time.time(), command=cmd)
                running[proc] = (run_dir, cmd, slot)
            time.sleep(POLL_SECONDS)
            for proc in [p for p in running if p.poll() is not None]:
                run_dir, cmd, slot = running.pop(proc)
                free.append(slot)
                failure = finish(run_dir, cmd, proc.returncode)
                if failure is None:
                    log(f"{run_dir}: finished")
                else:
                    failures.append(failure)
                    log(f"{run_dir}: failed ({describe_status(proc.returncode)}): "
                        f"{failure['last_line']}")
    except KeyboardInterrupt:
        stop_processes(list(running))
        for run_dir, _, _ in running.values():
            record_launch(run_dir, state="stopped", finished=time.time())
        for run_dir, _ in pending:
            record_launch(run_dir, state="stopped")
        log(f"interrupted: stopped {len(running)} run(s); their checkpoints are kept, "
            "launch again to resume")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return failures


def _main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()
