"""training/module.py: the network of a configuration, and the Module that trains it with
the configuration's optimizer, initialisation and seed."""
import dataclasses
import os

import pytest

from common.cli import UsageError
from common.mx import mx
from training.args import parse_cifar_args
from training.speed import SyntheticIter
from training.module import build_symbol, create_module, environment
from training.schedule import StepSchedule

TINY = ["--benchmark", "--num-layers", "8", "--batch-size", "4"]


def module(argv):
    config = parse_cifar_args(TINY + argv)
    data = SyntheticIter(10, (4, 3, 32, 32), 1)
    return create_module(config, build_symbol(config), data, [mx.cpu()], "local",
                         StepSchedule(config.lr)), config


def test_the_optimizer_and_its_settings_are_the_configurations():
    mod, config = module(["--lr", "0.2", "--mom", "0.5", "--wd", "0.001", "--optimizer", "sgd"])
    opt = mod._optimizer
    assert type(opt).__name__ == "SGD"
    assert (opt.momentum, opt.wd, opt.lr_scheduler(1)) == (0.5, 0.001, 0.2)


def test_the_same_seed_gives_the_same_initial_parameters():
    first, _ = module(["--seed", "3"])
    second, _ = module(["--seed", "3"])
    other, _ = module(["--seed", "4"])
    name = "stage1_unit1_conv1_weight"
    a, b, c = (m.get_params()[0][name].asnumpy() for m in (first, second, other))
    assert (a == b).all() and not (a == c).all()


def test_an_impossible_network_is_one_line():
    config = parse_cifar_args(TINY)
    with pytest.raises(UsageError, match="depth 9 is impossible"):
        build_symbol(dataclasses.replace(config, num_layers=9))


def test_environment_restores_what_it_set(monkeypatch):
    monkeypatch.setenv("RESNET_A", "old")
    monkeypatch.delenv("RESNET_B", raising=False)
    with environment({"RESNET_A": "new", "RESNET_B": "1"}):
        assert (os.environ["RESNET_A"], os.environ["RESNET_B"]) == ("new", "1")
    assert os.environ["RESNET_A"] == "old" and "RESNET_B" not in os.environ
