"""Start many training runs: a pool of local slots (``--jobs``), or Slurm jobs (submitit).

A run is a run directory and the command that trains into it. Whatever starts a run, the run
writes its state into that directory (``training.rundir``), so ``python3 -m experiments
status`` and the report read files, never a live process: ``train.log`` (the run's stdout
and stderr, appended by every attempt), ``launch.json`` (how it was launched and where it
stands: ``queued``, ``running``, ``failed``, ``stopped``, with the process id or the Slurm
job id) and ``done.json`` (once the training command exited with status 0).

Locally, each slot owns a disjoint set of cores (its affinity mask, ``OMP_NUM_THREADS`` set
to their number) and, with ``--gpus``, a disjoint set of GPUs; a run starts only in a free
slot, so no two runs ever share a core or a GPU. On Slurm every unfinished run becomes one
task of a job array; a task that is preempted or reaches its time limit is requeued by
submitit and resumes from its newest checkpoint.
"""
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from common.cli import UsageError, name_values
from training.rundir import (SLURM, has_started, is_done, last_line, list_checkpoints, log_path,
                             mark_done, read_launch, record_launch)

LAUNCHERS = ("local", "slurm")
POLL_SECONDS = 0.2
STOP_SECONDS = 10  # how long stopped children get to exit before SIGKILL
DEFAULT_TIME_MINUTES = 24 * 60
# Slurm's job states, as the run states they mean; a job Slurm lists in none of them ended.
SLURM_ACTIVE = {"PENDING": "queued", "REQUEUED": "queued", "REQUEUE_HOLD": "queued",
                "REQUEUE_FED": "queued", "SUSPENDED": "queued", "CONFIGURING": "running",
                "RUNNING": "running", "COMPLETING": "running", "RESIZING": "running",
                "SIGNALING": "running", "STAGE_OUT": "running"}


def add_launch_args(parser):
    """The flags of ``launch``: where runs go and what each gets."""
    g = parser.add_argument_group("Launch")
    g.add_argument("--launcher", choices=LAUNCHERS, default="local",
                   help="local: run here; slurm: submit a Slurm job array and return")
    g.add_argument("--jobs", type=int,
                   help="runs at once (local default: 1, or one per GPU group with --gpus; "
                        "slurm: most array tasks running at once)")
    g.add_argument("--gpus", help="this machine's GPUs to share out among the runs, e.g. "
                                  "0,1,2,3 (local; default: train on the CPU)")
    g.add_argument("--gpus-per-run", type=int,
                   help="GPUs each run trains on (local default with --gpus: 1; slurm: "
                        "GPUs per job, default none)")
    g.add_argument("--cpus-per-run", type=int,
                   help="cores each run gets (local default: this machine's cores / --jobs)")
    g.add_argument("--partition", help="Slurm partition")
    g.add_argument("--time", type=int, default=DEFAULT_TIME_MINUTES, metavar="MINUTES",
                   help="Slurm time limit of each job; a run that needs longer is requeued "
                        "and resumes (default: %(default)s)")
    g.add_argument("--mem", help="Slurm memory per job, e.g. 16G")
    g.add_argument("--max-requeues", type=int, default=20,
                   help="times a Slurm run may be requeued after reaching its time limit")
    g.add_argument("--sbatch-option", action="append", default=[], metavar="NAME=VALUE",
                   help="extra sbatch option, e.g. account=myproject or qos=long (repeatable)")
    return g


def parse_launch_args(argv=()):
    """The launch flags parsed from ``argv`` alone (their defaults for ``()``)."""
    from common.cli import Parser
    parser = Parser(prog="launch")
    add_launch_args(parser)
    return parser.parse_args(list(argv))


def launch(runs, args, log=print, slurm_folder=None):
    """Train every unfinished run of ``runs`` ([(run_dir, command)]) as ``args`` (the
    parsed launch flags) say.

    Runs marked done are skipped, runs with checkpoints resume (``--resume`` is added).
    Locally, returns when every run has ended, with the failures as
    [{"run_dir", "status", "last_line"}] (``status``: the exit status, negative for a
    signal); the other runs go on after a failure. On Ctrl-C every child is stopped, their
    checkpoints are left as they are, and KeyboardInterrupt is raised again. With Slurm,
    returns [] once the jobs are submitted (submitit's files go to ``slurm_folder``,
    default: ``slurm/`` beside the runs).
    """
    check_launch_args(args)
    if args.launcher == "slurm":
        submit_slurm(runs, args, log, slurm_folder)
        return []
    return run_local(runs, args, log)


def check_launch_args(args):
    for name in ("jobs", "gpus_per_run", "cpus_per_run", "time"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.max_requeues < 0:
        raise UsageError(f"--max-requeues must be >= 0, got {args.max_requeues}")
    if args.launcher == "slurm" and args.gpus:
        raise UsageError("--gpus names this machine's GPUs; on Slurm give --gpus-per-run")
    if args.launcher == "local":
        slurm_only = [f"--{n.replace('_', '-')}" for n in ("partition", "mem")
                      if getattr(args, n)] + (["--sbatch-option"] if args.sbatch_option else [])
        if slurm_only:
            raise UsageError(f"{', '.join(slurm_only)} need --launcher slurm")
    sbatch_options(args.sbatch_option)


def sbatch_options(items):
    """["account=x", "qos=long"] -> {"account": "x", "qos": "long"}."""
    return {name.strip().lstrip("-").replace("-", "_"): value
            for name, value in name_values(items, "--sbatch-option")}


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
    """Whether the process recorded under ``key`` of ``info`` still runs (this host only)."""
    pid = info.get(key)
    if not pid or info.get("host") != socket.gethostname():
        return None if pid else False  # None: it ran on another host, cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    recorded, now = info.get(f"{key}_cmdline"), process_cmdline(pid)
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
    state = info.get("state")
    ended = "stopped" if has_started(run_dir) else "not started"
    if state == "failed":
        return "failed"
    if info.get("launcher") == "slurm":
        if slurm is None:
            return state or ended
        active = SLURM_ACTIVE.get(slurm.get(info.get("job_id"), ""))
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


# ---- on this machine ---------------------------------------------------------------------

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


def local_slots(args, cores=None):
    """Disjoint (cores, GPUs) shares of this machine, one per concurrent run."""
    cores = available_cores() if cores is None else list(cores)
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else []
    per_run = args.gpus_per_run or 1
    if args.gpus_per_run and not gpus:
        raise UsageError("--gpus-per-run needs --gpus (this machine's GPUs, e.g. 0,1,2,3)")
    groups = [tuple(gpus[i:i + per_run]) for i in range(0, len(gpus) - per_run + 1, per_run)]
    if gpus and not groups:
        raise UsageError(f"--gpus-per-run {per_run} exceeds the {len(gpus)} GPU(s) of --gpus")
    jobs = args.jobs or (len(groups) if gpus else 1)
    if gpus and jobs > len(groups):
        raise UsageError(f"--jobs {jobs} needs {jobs * per_run} GPUs at {per_run} a run; "
                         f"--gpus gives {len(gpus)}")
    cpus = args.cpus_per_run or len(cores) // jobs
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


def run_local(runs, args, log=print):
    """Keep one run going in every slot until all have ended; returns the failures."""
    slots = local_slots(args)
    me = {"launcher": "local", "host": socket.gethostname(), "launcher_pid": os.getpid(),
          "launcher_pid_cmdline": process_cmdline(os.getpid())}
    pending = []
    for run_dir, cmd in runs:
        state = run_state(run_dir)
        if state == "done":
            log(f"{run_dir}: done before, skipped")
        elif state in ("running", "queued"):
            log(f"{run_dir}: {state} elsewhere ({read_launch(run_dir).get('host')}), skipped")
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


# ---- on Slurm ----------------------------------------------------------------------------

class TrainJob:
    """One run as a Slurm job (a submitit callable): train, resuming from the newest
    checkpoint; when the job is preempted or reaches its time limit, submitit calls
    ``checkpoint`` and requeues the same job, which then resumes."""

    def __init__(self, run_dir, cmd, gpus_per_run=None):
        self.run_dir, self.cmd, self.gpus_per_run = run_dir, list(cmd), gpus_per_run
        self.cwd = os.getcwd()

    def command(self):
        cmd = resume_command(self.run_dir, self.cmd)
        if self.gpus_per_run:  # Slurm makes the job's GPUs visible as 0..k-1
            cmd += ["--gpus", ",".join(map(str, range(self.gpus_per_run)))]
        return cmd

    def __call__(self):
        cmd = self.command()
        env = dict(os.environ)
        if os.environ.get("SLURM_CPUS_PER_TASK"):
            env["OMP_NUM_THREADS"] = os.environ["SLURM_CPUS_PER_TASK"]
        record_launch(self.run_dir, state="running", host=socket.gethostname(),
                      started=time.time(), command=cmd,
                      attempts=read_launch(self.run_dir).get("attempts", 0) + 1)
        with open(log_path(self.run_dir), "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=self.cwd)
        try:
            returncode = proc.wait()
        finally:  # requeue or cancel: submitit exits from its signal handler
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        if returncode < 0:  # the job's own processes were signalled: cancel or preemption
            record_launch(self.run_dir, state="stopped", finished=time.time())
            raise ChildProcessError(f"{self.run_dir}: training {describe_status(returncode)}")
        failure = finish(self.run_dir, cmd, returncode)
        if failure:
            raise ChildProcessError(f"{self.run_dir}: training failed "
                                    f"({describe_status(returncode)}): {failure['last_line']}")
        return self.run_dir

    def checkpoint(self, *args, **kwargs):
        import submitit
        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir, self.cmd,
                                                           self.gpus_per_run))


def slurm_states(job_ids):
    """{job id: Slurm state} of ``job_ids`` from squeue, then sacct for those squeue no
    longer lists; None when Slurm cannot be asked (no squeue, or it fails)."""
    job_ids = {str(j) for j in job_ids if j}
    states = {}
    if not job_ids:
        return states
    out = _slurm_query(["squeue", "-h", "-r", "-o", "%i %T"])
    if out is None:
        return None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in job_ids:
            states[parts[0]] = parts[1]
    missing = sorted(job_ids - set(states))
    out = _slurm_query(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j",
                        ",".join(missing)]) if missing else None
    for line in (out or "").splitlines():
        job, _, state = line.partition("|")
        if job in missing and state:
            states[job] = state.split()[0]
    return states


def _slurm_query(cmd):
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def slurm_executor(args, folder, name):
    """A submitit SlurmExecutor set up from the launch flags."""
    try:
        import submitit
    except ImportError:
        raise UsageError("--launcher slurm needs submitit: pip install -e \".[slurm]\"") \
            from None
    try:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=args.max_requeues)
    except RuntimeError as err:  # no srun on this machine
        raise UsageError(f"--launcher slurm: {err}") from None
    params = {"job_name": name, "time": args.time, "cpus_per_task": args.cpus_per_run or 1}
    if args.partition:
        params["partition"] = args.partition
    if args.mem:
        params["mem"] = args.mem
    if args.gpus_per_run:
        params["gpus_per_node"] = args.gpus_per_run
    if args.jobs:
        params["array_parallelism"] = args.jobs
    options = sbatch_options(args.sbatch_option)
    if options:
        params["additional_parameters"] = options
    executor.update_parameters(**params)
    return executor


def submit_slurm(runs, args, log=print, folder=None):
    """Submit every unfinished run not already queued or running as one job array; the
    job ids go into the runs' launch.json. submitit's files go to ``folder`` (default:
    ``slurm/`` beside the runs)."""
    states = slurm_states(read_launch(d).get("job_id") for d, _ in runs) or {}
    todo = []
    for run_dir, cmd in runs:
        state = run_state(run_dir, states)
        if state == "done":
            log(f"{run_dir}: done before, skipped")
        elif state in ("running", "queued"):
            log(f"{run_dir}: {state} as job {read_launch(run_dir).get('job_id')}, skipped")
        else:
            todo.append((run_dir, cmd))
    if not todo:
        return []
    if folder is None:
        base = os.path.commonpath([os.path.abspath(d) for d, _ in runs])
        folder = os.path.join(os.path.dirname(base) if len(runs) == 1 else base, SLURM)
    name = os.path.basename(os.path.dirname(os.path.abspath(folder))) or "runs"
    executor = slurm_executor(args, folder, name)
    for run_dir, _ in todo:
        os.makedirs(run_dir, exist_ok=True)
    with executor.batch():
        jobs = [executor.submit(TrainJob(d, c, args.gpus_per_run)) for d, c in todo]
    for (run_dir, _), job in zip(todo, jobs):
        record_launch(run_dir, launcher="slurm", state="queued", job_id=str(job.job_id),
                      submitted=time.time(), slurm_log=str(job.paths.stdout))
        log(f"{run_dir}: submitted as Slurm job {job.job_id}")
    return jobs
