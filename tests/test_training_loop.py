"""training/loop.py: what a run records in config.json, where workers write, the seeding
of an epoch, and the checks that stop a diverged run."""
import numpy as np
import pytest

from common.mx import mx
from training import rundir
from training.args import parse_cifar_args
from training.loop import DivergedError, check_finite, run_record, seed_epoch, worker_dir
from training.module import build_symbol
from training.schedule import StepSchedule

TINY = ["--benchmark", "--num-layers", "8", "--batch-size", "4", "--validation-images", "100"]
PRE = {"image_shape": [3, 32, 32], "resize": 32, "crop": 32, "mean": [1.0, 2.0, 3.0],
       "std": [4.0, 5.0, 6.0]}


def record(meta):
    config = parse_cifar_args(TINY)
    return run_record(config, build_symbol(config), [mx.cpu()], 10, 3, 30,
                      StepSchedule(0.1, [15], 0.1), 0, 1, meta)


def test_the_run_record_holds_the_flags_the_data_and_what_they_resolved_to():
    rec = record({"classes": ["a", "b"], "preprocess": PRE})  # the scripts' dict form
    assert rec.preprocess == rundir.Preprocess.from_json(PRE)
    assert rec.classes == ("a", "b") and rec.evaluated == "validation"
    assert (rec.batches_per_epoch, rec.planned_epochs, rec.planned_iterations) == (10, 3, 30)
    assert rec.lr_steps_iterations == (15,) and rec.contexts == ("cpu(0)",)
    assert rec.flags["num_layers"] == 8 and rec.flags["image_shape"] == (3, 32, 32)
    assert record({"preprocess": rundir.Preprocess.from_json(PRE)}).preprocess == rec.preprocess
    with pytest.raises(ValueError, match="no place for dataset"):
        record({"dataset": "cifar10"})


def test_worker_zero_writes_the_run_folder_the_others_their_own():
    assert worker_dir("run", 0) == "run"
    assert worker_dir("run", 2).replace("\\", "/") == "run/worker2"


def test_an_epoch_is_seeded_from_seed_and_epoch():
    seed_epoch(7, 2)
    first = np.random.rand(), mx.nd.random.uniform(shape=(1,)).asscalar()
    seed_epoch(7, 2)
    assert (np.random.rand(), mx.nd.random.uniform(shape=(1,)).asscalar()) == first
    seed_epoch(7, 3)
    assert np.random.rand() != first[0]


def test_a_parameter_that_is_not_finite_stops_the_run():
    check_finite({"w": mx.nd.ones((2,))}, "parameter")
    with pytest.raises(DivergedError, match="parameter w is not finite"):
        check_finite({"w": mx.nd.array([1.0, float("nan")])}, "parameter")
