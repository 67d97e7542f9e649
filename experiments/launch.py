"""How an experiment's runs are launched: the launch flags, the typed ``LaunchConfig``
made of them once where the command line is parsed, and ``launch``, which trains the runs
in a pool of local slots (``experiments.local``) or submits them to Slurm
(``experiments.slurm``).

A run is a run directory and the command that trains into it. Whatever starts a run, the
run writes its state into that directory (``training.rundir``), so ``python3 -m
experiments status`` and the report read files, never a live process (see
``experiments.runstate``).
"""
from dataclasses import dataclass, field
from typing import Optional

from common.cli import Parser, UsageError, name_values

LAUNCHERS = ("local", "slurm")
DEFAULT_TIME_MINUTES = 24 * 60


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


@dataclass(frozen=True)
class LaunchConfig:
    """The launch flags, checked and typed; the default trains one run at a time here."""
    launcher: str = "local"
    jobs: Optional[int] = None  # runs at once (Slurm: array tasks at once)
    gpus: tuple = ()  # this machine's GPU ids to share out, as given ("0", "1")
    gpus_per_run: Optional[int] = None
    cpus_per_run: Optional[int] = None
    partition: Optional[str] = None
    time: int = DEFAULT_TIME_MINUTES  # Slurm's time limit of a job, in minutes
    mem: Optional[str] = None
    max_requeues: int = 20
    sbatch_options: dict = field(default_factory=dict)  # {"account": "x", "qos": "long"}


def launch_config(args):
    """The ``LaunchConfig`` of the parsed launch flags ``args``; a one-line UsageError for
    an impossible combination."""
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
    gpus = tuple(g.strip() for g in (args.gpus or "").split(",") if g.strip())
    return LaunchConfig(args.launcher, args.jobs, gpus, args.gpus_per_run, args.cpus_per_run,
                        args.partition, args.time, args.mem, args.max_requeues,
                        sbatch_options(args.sbatch_option))


def sbatch_options(items):
    """["account=x", "qos=long"] -> {"account": "x", "qos": "long"}."""
    return {name.strip().lstrip("-").replace("-", "_"): value
            for name, value in name_values(items, "--sbatch-option")}


def parse_launch_args(argv=()):
    """The ``LaunchConfig`` of the launch flags in ``argv`` alone."""
    parser = Parser(prog="launch")
    add_launch_args(parser)
    return launch_config(parser.parse_args(list(argv)))


def launch(runs, config=None, log=print, slurm_folder=None):
    """Train every unfinished run of ``runs`` ([(run_dir, command)]) as ``config`` (a
    ``LaunchConfig``; default: one run at a time here) says.

    Runs marked done are skipped, runs with checkpoints resume (``--resume`` is added).
    Locally, returns when every run has ended, with the failures as
    [{"run_dir", "status", "last_line"}] (``status``: the exit status, negative for a
    signal); the other runs go on after a failure. On Ctrl-C every child is stopped, their
    checkpoints are left as they are, and KeyboardInterrupt is raised again. With Slurm,
    returns [] once the jobs are submitted (submitit's files go to ``slurm_folder``,
    default: ``slurm/`` beside the runs).
    """
    config = config or LaunchConfig()
    if config.launcher == "slurm":
        from experiments.slurm import submit_slurm
        submit_slurm(runs, config, log, slurm_folder)
        return []
    from experiments.local import run_local
    return run_local(runs, config, log)
