"""training.distributed: a local parameter-server job on 127.0.0.1 (1 scheduler, 1 server,
2 workers), the launcher's flags and their one-line errors."""
import dataclasses
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from common.mx import mx
from data.synthetic import make_synthetic_cifar
from tests.train_support import ROOT, run_script
from training import rundir
from training import distributed


def run_job(argv, timeout=240):
    """Run the launcher in its own session; kill the whole job if it outlives ``timeout``."""
    # four processes share this machine's cores: one OpenMP thread each
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "training.distributed"] + argv, cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the distributed job did not end in {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


def test_dist_sync_workers_end_with_identical_parameters(tmp_path):
    # 205 images: the two workers get 103 and 102, i.e. 6 batches of 16 each
    data_dir = make_synthetic_cifar(str(tmp_path / "cifar"), train_per_batch=41, test_size=40)
    out = str(tmp_path / "run")
    code, log = run_job(["-n", "2", "-s", "1", "--launcher", "local", "--timeout", "200",
                         sys.executable, "train_cifar.py", "--kv-store", "dist_sync",
                         "--data-dir", data_dir, "--output-dir", out, "--num-layers", "8",
                         "--num-epochs", "1", "--batch-size", "16", "--no-plots"])
    assert code == 0, log[-3000:]
    dirs = [out, os.path.join(out, "worker1")]
    records = [rundir.read_metrics(d) for d in dirs]
    assert [r[-1]["iteration"] for r in records] == [6, 6]
    # different parts of the data: different training losses, the same evaluation
    assert records[0][-1]["train_loss"] != records[1][-1]["train_loss"]
    assert records[0][-1]["val_loss"] == records[1][-1]["val_loss"]
    params = [mx.nd.load(os.path.join(d, "model-0001.params")) for d in dirs]
    assert set(params[0]) == set(params[1])
    for name in params[0]:  # weights, and BatchNorm statistics averaged over workers
        np.testing.assert_array_equal(params[0][name].asnumpy(), params[1][name].asnumpy())
    with open(os.path.join(out, "config.json")) as f:
        assert '"num_workers": 2' in f.read()
    # the evaluation added up over the workers' halves is that of the whole test set
    import data
    from training.evaluation import eval_module, evaluate
    _, val = data.get_cifar_iters(data_dir, batch_size=16, prefetch=False)
    symbol, arg, aux = mx.model.load_checkpoint(os.path.join(out, "model"), 1)
    tester = eval_module(symbol, val, [mx.cpu()])
    tester.set_params(arg, aux)
    whole = evaluate(tester, val)
    assert whole["val_acc"] == pytest.approx(records[0][-1]["val_acc"], abs=1e-9)
    assert whole["val_loss"] == pytest.approx(records[0][-1]["val_loss"], rel=1e-5)


def test_launcher_usage_errors_are_one_line():
    result = run_script(["-m", "training.distributed", "-n", "2"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "python3 -m training.distributed: error: give the command to run, e.g. python3 "
        "train_cifar.py --kv-store dist_sync ..."]
    result = run_script(["-m", "training.distributed", "-n", "2", "--launcher", "ssh", "true"])
    assert result.returncode == 2 and "needs -H HOSTFILE" in result.stderr


def test_a_failing_process_stops_the_whole_job(tmp_path):
    # a worker that exits with an error would leave the scheduler waiting forever
    code, log = run_job(["-n", "2", "-s", "1", "--launcher", "local", "--timeout", "100",
                         sys.executable, "-c", "import sys; sys.exit(3)"], timeout=150)
    assert code == 1 and "stopping the job" in log


def test_thread_is_alive_restored_for_the_tracker():
    distributed.patch_threading()
    t = threading.Thread(target=lambda: None)
    assert t.isAlive() is False
    t.start()
    t.join()
    assert t.isAlive() is False


SLEEPER = ("import subprocess, sys, time; "
           "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
           "print(p.pid, flush=True); time.sleep(60)")


def test_descendants_are_children_and_grandchildren():
    # other tests' processes may live beside (a session's Slurm daemons): count only ours
    before = set(distributed.descendants(os.getpid()))
    child = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        assert set(distributed.descendants(os.getpid())) - before == {child.pid, grandchild}
        assert distributed.descendants(child.pid) == [grandchild]
    finally:
        for pid in distributed.descendants(child.pid) + [child.pid]:
            os.kill(pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()


def test_flags_become_a_frozen_job():
    job = distributed.parse_args(["-n", "2", "--env", "OMP_NUM_THREADS=1", "--env", "A=b=c",
                                  "python3", "train_cifar.py", "--kv-store", "dist_sync"])
    assert (job.num_workers, job.num_servers, job.launcher) == (2, 2, "local")
    assert job.command == ("python3", "train_cifar.py", "--kv-store", "dist_sync")
    assert job.env == (("OMP_NUM_THREADS", "1"), ("A", "b=c"))
    assert job.host_ip == "127.0.0.1"  # local jobs stay on this machine
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.num_servers = 1
    ssh = distributed.parse_args(["-n", "2", "-s", "1", "-H", "hosts", "--launcher", "ssh",
                                  "true"])
    assert (ssh.num_servers, ssh.host_ip) == (1, None)
    opts = distributed.tracker_opts(job)
    assert opts.env == ["OMP_NUM_THREADS=1", "A=b=c"]  # as dmlc's yarn client splits them
    assert opts.host_ip == "127.0.0.1" and opts.num_servers == 2


def test_a_bad_env_item_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        distributed.parse_args(["-n", "2", "--env", "OMP_NUM_THREADS:1", "true"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("python3 -m training.distributed: error: --env expects "
                                       "NAME=VALUE, got 'OMP_NUM_THREADS:1'\n")
