"""Runs as a Slurm job array (submitit): every unfinished run becomes one task; a task that
is preempted or reaches its time limit is requeued by submitit and resumes from its newest
checkpoint. The job ids go into the runs' ``launch.json``; Slurm's states are asked of
squeue and sacct."""
import os
import socket
import subprocess
import time

from common.cli import UsageError
from experiments.runstate import describe_status, finish, resume_command, run_state
from training.rundir import SLURM, log_path, read_launch, record_launch


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
                      attempts=(read_launch(self.run_dir).attempts or 0) + 1)
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


def slurm_executor(config, folder, name):
    """A submitit SlurmExecutor set up as ``config`` (a LaunchConfig) says."""
    try:
        import submitit
    except ImportError:
        raise UsageError("--launcher slurm needs submitit: pip install -e \".[slurm]\"") \
            from None
    try:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=config.max_requeues)
    except RuntimeError as err:  # no srun on this machine
        raise UsageError(f"--launcher slurm: {err}") from None
    params = {"job_name": name, "time": config.time, "cpus_per_task": config.cpus_per_run or 1}
    if config.partition:
        params["partition"] = config.partition
    if config.mem:
        params["mem"] = config.mem
    if config.gpus_per_run:
        params["gpus_per_node"] = config.gpus_per_run
    if config.jobs:
        params["array_parallelism"] = config.jobs
    if config.sbatch_options:
        params["additional_parameters"] = dict(config.sbatch_options)
    executor.update_parameters(**params)
    return executor


def submit_slurm(runs, config, log=print, folder=None):
    """Submit every unfinished run not already queued or running as one job array, as
    ``config`` (a LaunchConfig) says; the job ids go into the runs' launch.json.
    submitit's files go to ``folder`` (default: ``slurm/`` beside the runs)."""
    states = slurm_states(read_launch(d).job_id for d, _ in runs) or {}
    todo = []
    for run_dir, cmd in runs:
        state = run_state(run_dir, states)
        if state == "done":
            log(f"{run_dir}: done before, skipped")
        elif state in ("running", "queued"):
            log(f"{run_dir}: {state} as job {read_launch(run_dir).job_id}, skipped")
        else:
            todo.append((run_dir, cmd))
    if not todo:
        return []
    if folder is None:
        base = os.path.commonpath([os.path.abspath(d) for d, _ in runs])
        folder = os.path.join(os.path.dirname(base) if len(runs) == 1 else base, SLURM)
    name = os.path.basename(os.path.dirname(os.path.abspath(folder))) or "runs"
    executor = slurm_executor(config, folder, name)
    for run_dir, _ in todo:
        os.makedirs(run_dir, exist_ok=True)
    with executor.batch():
        jobs = [executor.submit(TrainJob(d, c, config.gpus_per_run)) for d, c in todo]
    for (run_dir, _), job in zip(todo, jobs):
        record_launch(run_dir, launcher="slurm", state="queued", job_id=str(job.job_id),
                      submitted=time.time(), slurm_log=str(job.paths.stdout))
        log(f"{run_dir}: submitted as Slurm job {job.job_id}")
    return jobs
