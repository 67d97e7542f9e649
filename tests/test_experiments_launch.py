"""experiments/launch.py: the launch flags become a checked, typed LaunchConfig once, and
launch hands the runs to the local pool or to Slurm."""
import pytest

from common.cli import UsageError
from experiments import launch


def test_the_flags_become_a_typed_launch_config():
    config = launch.parse_launch_args(["--jobs", "2", "--gpus", "0, 1,2", "--gpus-per-run",
                                       "1"])
    assert config == launch.LaunchConfig(jobs=2, gpus=("0", "1", "2"), gpus_per_run=1)
    slurm = launch.parse_launch_args(["--launcher", "slurm", "--partition", "gpu",
                                      "--sbatch-option=--qos=long", "--sbatch-option",
                                      "mail-type=END", "--time", "60"])
    assert (slurm.launcher, slurm.partition, slurm.time) == ("slurm", "gpu", 60)
    assert slurm.sbatch_options == {"qos": "long", "mail_type": "END"}
    assert launch.parse_launch_args() == launch.LaunchConfig()  # one run at a time here


@pytest.mark.parametrize("argv, message", [
    (["--jobs", "0"], "--jobs must be >= 1"),
    (["--max-requeues", "-1"], "--max-requeues must be >= 0"),
    (["--partition", "gpu"], "--partition need --launcher slurm"),
    (["--launcher", "slurm", "--gpus", "0,1"], "on Slurm give --gpus-per-run"),
    (["--launcher", "slurm", "--sbatch-option", "account"], "expects NAME=VALUE"),
])
def test_bad_launch_flags_fail_clearly(argv, message):
    with pytest.raises(UsageError, match=message):
        launch.parse_launch_args(argv)
