"""Launch a distributed job with the tracker MXNet ships (``dmlc_tracker``).

    python3 -m training.distributed -n 2 -s 1 --launcher local \\
        python3 train_cifar.py --kv-store dist_sync --data-dir cifar --num-layers 20 ...

starts a scheduler, ``-s`` parameter servers and ``-n`` workers running the command
(all the same command: MXNet turns the scheduler and server processes into its
parameter-server roles when they import it). Launchers: local, ssh and mpi (with
``-H hostfile``), slurm, sge, yarn. ``dmlc_tracker`` still calls ``Thread.isAlive``,
which Python 3.9 removed; it is restored here, so nothing in site-packages is edited.
"""
import argparse
import logging
import os
import shlex
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Optional

LAUNCHERS = ("local", "ssh", "mpi", "slurm", "sge", "yarn")


@dataclass(frozen=True)
class Job:
    """A distributed job as its flags give it: ``num_workers`` workers and ``num_servers``
    servers running ``command`` through ``launcher``, with the variables ``env``
    ((name, value) pairs) set for every process."""
    num_workers: int
    num_servers: int
    launcher: str
    command: tuple
    hostfile: Optional[str] = None
    host_ip: Optional[str] = None  # 127.0.0.1 for local jobs unless given
    sync_dst_dir: Optional[str] = None
    env: tuple = ()
    timeout: Optional[float] = None


def patch_threading():
    """Give ``threading.Thread`` the pre-3.9 names dmlc_tracker uses."""
    if not hasattr(threading.Thread, "isAlive"):
        threading.Thread.isAlive = threading.Thread.is_alive


def descendants(pid):
    """Process ids of all descendants of ``pid`` (Linux /proc), children first."""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def stop_job(code, why):
    """Kill every process this launcher started and exit with ``code``."""
    logging.error("stopping the job: %s", why)
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(code)


def watch_local_job(timeout):
    """A failed process (its tracker thread raises) or ``timeout`` seconds stop the job,
    where ``dmlc_tracker`` alone would wait forever for the missing process."""
    def on_error(hook_args):
        message = str(hook_args.exc_value).split(" {", 1)[0]  # not the environment dump
        stop_job(1, f"{hook_args.exc_type.__name__}: {message}")
    threading.excepthook = on_error
    if timeout:
        timer = threading.Timer(timeout, stop_job, (124, f"timed out after {timeout:g} s"))
        timer.daemon = True
        timer.start()


def parse_args(argv=None):
    """The launcher's flags (``argv``, default sys.argv), checked: a ``Job``."""
    from common.cli import Parser, UsageError, name_values
    p = Parser(prog="python3 -m training.distributed", description=__doc__.splitlines()[0])
    p.add_argument("-n", "--num-workers", required=True, type=int, help="worker processes")
    p.add_argument("-s", "--num-servers", type=int, help="server processes (default: -n)")
    p.add_argument("-H", "--hostfile", help="hosts, one a line (ssh, mpi)")
    p.add_argument("--launcher", default="local", choices=LAUNCHERS)
    p.add_argument("--host-ip", help="address of the scheduler (default: 127.0.0.1 for "
                   "local jobs, else guessed)")
    p.add_argument("--sync-dst-dir", help="ssh: copy the current folder there on every host")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable of every process of a local or yarn "
                   "job (repeatable)")
    p.add_argument("--timeout", type=float, help="local jobs: stop all processes after this "
                   "many seconds")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command every process runs")
    args = p.parse_args(argv)
    if not args.command:
        p.error("give the command to run, e.g. python3 train_cifar.py --kv-store dist_sync ...")
    if args.num_workers < 1 or (args.num_servers is not None and args.num_servers < 1):
        p.error("-n and -s must be >= 1")
    if args.launcher in ("ssh", "mpi") and not args.hostfile:
        p.error(f"the {args.launcher} launcher needs -H HOSTFILE")
    try:
        env = tuple(name_values(args.env, "--env"))
    except UsageError as err:
        p.error(str(err))
    local = "127.0.0.1" if args.launcher == "local" else None
    return Job(args.num_workers, args.num_servers or args.num_workers, args.launcher,
               tuple(args.command), args.hostfile, args.host_ip or local, args.sync_dst_dir,
               env, args.timeout)


def tracker_opts(job):
    """The options ``dmlc_tracker``'s submit functions expect for ``job``."""
    from dmlc_tracker import opts
    argv = ["--num-workers", str(job.num_workers), "--num-servers", str(job.num_servers),
            "--cluster", job.launcher]
    if job.hostfile:
        argv += ["--host-file", job.hostfile]
    if job.sync_dst_dir:
        argv += ["--sync-dst-dir", job.sync_dst_dir]
    if job.host_ip:
        argv += ["--host-ip", job.host_ip]
    for name, value in job.env:
        argv += ["--env", f"{name}={value}"]
    # the tracker joins the command into a shell line: quote every argument
    return opts.get_opts(argv + ["--"] + [shlex.quote(a) for a in job.command])


def local_environment(job):
    """Set ``job``'s variables here, where a local job's processes inherit them, and its
    scheduler's address (local jobs talk over 127.0.0.1 unless --host-ip says otherwise)."""
    os.environ.setdefault("DMLC_NODE_HOST", job.host_ip)
    for name, value in job.env:
        os.environ[name] = value


def submit(job):
    """Run ``job`` through its ``dmlc_tracker`` launcher; returns when it ends."""
    patch_threading()
    if job.launcher == "local":
        local_environment(job)
    from dmlc_tracker import tracker
    if job.host_ip:  # not every launcher passes --host-ip on to the tracker
        host_ip = job.host_ip
        tracker.get_host_ip = lambda _=None: host_ip
    module = __import__(f"dmlc_tracker.{job.launcher}", fromlist=["submit"])
    logging.info("%s job: %d worker(s), %d server(s): %s", job.launcher, job.num_workers,
                 job.num_servers, " ".join(job.command))
    module.submit(tracker_opts(job))


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    job = parse_args(argv)
    if job.launcher == "local":
        watch_local_job(job.timeout)
    submit(job)
    return 0


if __name__ == "__main__":
    from common.cli import run_main
    sys.exit(run_main(main, prog="training.distributed"))
