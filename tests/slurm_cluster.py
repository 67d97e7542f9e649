"""A real one-node Slurm cluster on 127.0.0.1 for the launcher's tests.

Debian's ``slurm-wlm`` and ``munge`` packages give the daemons; this starts ``munged``,
``slurmctld`` and ``slurmd`` as root with a generated ``slurm.conf`` (this machine's CPUs
and memory, ``proctrack/linuxproc``, ``task/none``, state, spool, logs and the munge socket
under one folder, free ports), waits until ``sinfo`` shows the node idle, and stops them.
Clients find the cluster through ``SLURM_CONF``.
"""
import os
import shutil
import socket
import subprocess
import time

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun",
           "scontrol", "scancel")


def why_not_available():
    """Why a cluster cannot be started here, or None."""
    missing = [d for d in DAEMONS if not shutil.which(d, path=_path())]
    if missing:
        return ("Slurm is not installed (missing " + ", ".join(missing) +
                "; apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        return "the test Slurm cluster runs its daemons as root; not root"
    return None


def _path():
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb():
    with open("/proc/meminfo") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return kb // 1024 - 512  # leave slurmd's own check some room


CONF = """\
ClusterName=testcluster
SlurmctldHost={host}(127.0.0.1)
MailProg=/bin/true
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
CredType=cred/munge
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerParameters=sched_interval=1
MinJobAge=300
KillWait=5
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """munged, slurmctld and slurmd under ``root``; ``env`` is what clients need."""

    def __init__(self, root, cpus=None):
        self.root = str(root)
        self.node = "testnode"
        self.cpus = cpus or len(os.sched_getaffinity(0))
        self.conf = os.path.join(self.root, "slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf, PATH=_path())
        self.procs = []

    def start(self, timeout=60):
        for folder in ("state", "spool"):
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(CONF.format(root=self.root, node=self.node,
                                host=socket.gethostname().split(".")[0], cpus=self.cpus,
                                memory=_memory_mb(), ctld_port=_free_port(),
                                slurmd_port=_free_port()))
        key = os.path.join(self.root, "munge.key")
        self._check(["mungekey", "--create", "--keyfile", key, "--force"])
        self._daemon(["munged", "--foreground", "--force", f"--key-file={key}",
                      f"--socket={self.root}/munge.socket",
                      f"--pid-file={self.root}/munged.pid",
                      f"--log-file={self.root}/munged.log",
                      f"--seed-file={self.root}/munged.seed"])
        self._wait(lambda: os.path.exists(f"{self.root}/munge.socket"), timeout, "munged")
        self._daemon(["slurmctld", "-D", "-c", "-i", "-f", self.conf])
        self._daemon(["slurmd", "-D", "-f", self.conf, "-N", self.node])
        self._wait(self.idle, timeout, "the node to be idle in sinfo")
        return self

    def idle(self):
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env,
                             capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def stop(self):
        subprocess.run(["scancel", "--full", "--user", "root"], env=self.env,
                       capture_output=True)
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def log(self, name):
        """The tail of a daemon's log (for failure messages)."""
        try:
            with open(os.path.join(self.root, f"{name}.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def _check(self, cmd):
        subprocess.run(cmd, env=self.env, check=True, capture_output=True)

    def _daemon(self, cmd):
        out = open(os.path.join(self.root, f"{cmd[0]}.out"), "w")
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=out,
                                           stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL))

    def _wait(self, ready, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready():
                return
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead:
                break
            time.sleep(0.5)
        self.stop()
        logs = "\n".join(f"--- {n}\n{self.log(n)}" for n in ("munged", "slurmctld", "slurmd"))
        raise RuntimeError(f"timed out waiting for {what}; daemons: {logs}")
