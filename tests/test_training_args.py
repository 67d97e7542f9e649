"""The training flags (training/args.py): typed once into a frozen configuration, one-line
errors for bad values, the keys config.json records, and config.json files written before
the flags were typed."""
import dataclasses
import json

import pytest

from common.cli import UsageError, parse_gpus, parse_shortcut_params, parse_yes_no, run_main
from training.args import (CifarConfig, ImagenetConfig, TrainConfig, cifar_parser,
                           imagenet_parser, parse_cifar_args, parse_imagenet_args)
from training.rundir import typed_flags

RUN = ["--data-dir", "d", "--output-dir", "o", "--num-layers", "20"]


def fail(argv, capsys):
    """parse_cifar_args as train_cifar.py runs it; returns its one-line error."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(parse_cifar_args, argv, prog="train_cifar.py")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("train_cifar.py: error: ")
    return err[0].removeprefix("train_cifar.py: error: ")


def test_flags_become_typed_values():
    config = parse_cifar_args(RUN + ["--bottleneck", "no", "--shortcut", "constant_scaling",
                                     "--shortcut-param", "scale=0.5",
                                     "--shortcut-param", "scale_residual=false",
                                     "--lr-step-epochs", "81,122"])
    assert isinstance(config, CifarConfig) and isinstance(config, TrainConfig)
    assert config.image_shape == (3, 32, 32)
    assert config.bottleneck is False
    assert config.shortcut_param == {"scale": 0.5, "scale_residual": False}
    assert (config.gpus, config.cpus, config.kv_store) == ((), None, "local")
    assert (config.lr_step_epochs, config.lr_step_iters) == ((81, 122), (32000, 48000))
    assert (config.dataset, config.num_classes, config.num_examples) == ("cifar10", 10, None)
    assert parse_cifar_args(RUN + ["--bottleneck", "yes"]).bottleneck is True
    assert parse_cifar_args(RUN).bottleneck is None  # by depth
    assert parse_cifar_args(RUN + ["--dataset", "cifar100"]).num_classes == 100


def test_gpus_are_a_tuple_of_ids_and_choose_the_kvstore():
    config = parse_cifar_args(["--benchmark", "--num-layers", "8", "--gpus", "0,1"])
    assert (config.gpus, config.kv_store) == ((0, 1), "device")
    assert parse_gpus("3") == (3,) and parse_gpus(None) == () == parse_gpus("")
    assert parse_cifar_args(["--benchmark", "--num-layers", "8", "--gpus", "0",
                             "--kv-store", "local"]).kv_store == "local"


def test_imagenet_flags():
    config = parse_imagenet_args(["--data-dir", "d", "--output-dir", "o", "--num-layers", "50",
                                  "--image-shape", "3,160,160"])
    assert isinstance(config, ImagenetConfig)
    assert (config.image_shape, config.num_classes, config.top_k) == ((3, 160, 160), 1000, 5)
    assert (config.lr_step_epochs, config.data_nthreads) == ((30, 60), 4)


def test_the_configuration_is_frozen():
    config = parse_cifar_args(RUN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.shortcut_kwargs = {}
    assert dataclasses.replace(config, seed=3).seed == 3 and config.seed == 0


@pytest.mark.parametrize("parser, config_class", [(cifar_parser, CifarConfig),
                                                  (imagenet_parser, ImagenetConfig)])
def test_config_json_keeps_the_keys_of_the_flags(parser, config_class):
    flags = vars(parser().parse_args([]))
    assert {f.name for f in dataclasses.fields(config_class)} == set(flags)


@pytest.mark.parametrize("argv, message", [
    (["--gpus", "0,x"], "--gpus expects comma-separated GPU ids, got '0,x'"),
    (["--shortcut-param", "scale"], "--shortcut-param expects NAME=VALUE, got 'scale'"),
    (["--shortcut-param", "scale=big"], "--shortcut-param scale: 'big' is not a number"),
    (["--lr-step-iters", "1,x"], "--lr-step-iters must be comma-separated integers, got '1,x'"),
    (["--lr-step-epochs", "3;4"],
     "--lr-step-epochs must be comma-separated integers, got '3;4'"),
    (["--image-shape", "3,64,64"],
     "--image-shape 3,64,64: CIFAR images are 3,32,32 (other shapes only with --benchmark)"),
    (["--benchmark", "--image-shape", "3,32"],
     "image_shape must be channels,height,width, got '3,32'"),
    (["--bottleneck", "maybe"], "argument --bottleneck: invalid choice: 'maybe' "
                                "(choose from 'yes', 'no')"),
    (["--cpus", "2", "--gpus", "0"], "give either --gpus or --cpus, not both"),
    (["--lr-factor", "2"], "--lr-factor must be in (0, 1], got 2.0"),
    (["--top-k", "10"], "--top-k 10 needs more than 10 classes; the network has 10 "
                        "(--top-k 0 turns it off)"),
])
def test_bad_values_are_one_line_errors(argv, message, capsys):
    assert fail(RUN + argv, capsys) == message


def test_value_parsers():
    assert parse_yes_no("yes", "--bottleneck") is True and parse_yes_no(None, "x") is None
    assert parse_yes_no(False, "--bottleneck") is False
    with pytest.raises(UsageError, match="^--bottleneck must be yes or no, got 'maybe'$"):
        parse_yes_no("maybe", "--bottleneck")
    assert parse_shortcut_params(["gate_bias=-6", "a=TRUE"]) == {"gate_bias": -6.0, "a": True}
    assert parse_shortcut_params([]) == {}


OLD_CONFIG = {  # as config.json was written while the flags stayed text
    "image_shape": "3,32,32", "bottleneck": "yes", "shortcut_param": ["scale=0.5"],
    "gpus": None, "lr_step_epochs": None, "lr_step_iters": "32000,48000", "seed": 0,
    "kv_store": "local", "preprocess": {"image_shape": [3, 32, 32]}}


def test_typed_flags_reads_old_and_new_config_files_alike():
    typed = typed_flags(OLD_CONFIG)
    assert typed == dict(OLD_CONFIG, image_shape=[3, 32, 32], bottleneck=True,
                         shortcut_param={"scale": 0.5}, gpus=[], lr_step_epochs=[],
                         lr_step_iters=[32000, 48000])
    assert typed_flags(typed) == typed
    assert typed_flags({"gpus": "0,1", "bottleneck": "no"}) == {"gpus": [0, 1],
                                                                "bottleneck": False}
    assert typed_flags({"seed": 1}) == {"seed": 1}  # keys it lacks stay absent


def test_a_new_config_json_equals_an_old_one_read_with_typed_flags():
    config = parse_cifar_args(RUN + ["--bottleneck", "yes", "--shortcut", "constant_scaling",
                                     "--shortcut-param", "scale=0.5"])
    written = json.loads(json.dumps(dataclasses.asdict(config)))
    fields = {k: written[k] for k in OLD_CONFIG if k in written}
    assert fields == {k: v for k, v in typed_flags(OLD_CONFIG).items() if k in fields}
