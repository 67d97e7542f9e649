"""The papers' recipes (training/recipe.py): the scripts' defaults, scaled schedules, and
the flags that write a recipe out."""
import pytest

import train_cifar
import train_imagenet
from training.recipe import CIFAR, IMAGENET, Schedule, default_warmup


def test_the_scripts_default_to_the_papers_recipes():
    args = train_cifar.parse_args(["--data-dir", "d", "--output-dir", "o", "--num-layers", "20"])
    assert (args.batch_size, args.lr, args.optimizer, args.mom, args.wd) == \
        (128, 0.1, "nag", 0.9, 1e-4)
    assert (args.num_iters, args.lr_step_iters, args.warmup_lr) == (64000, (32000, 48000), 0.01)
    args = train_imagenet.parse_args(["--data-dir", "d", "--output-dir", "o",
                                      "--num-layers", "50"])
    assert (args.batch_size, args.optimizer, args.num_epochs, args.lr_step_epochs) == \
        (256, "sgd", 90, (30, 60))


def test_scaled_schedules_keep_the_papers_fractions():
    assert CIFAR.scaled() == Schedule(64000, (32000, 48000), 400)
    assert CIFAR.scaled(2000) == Schedule(2000, (1000, 1500), 12)  # 400 * 2000 / 64000
    assert CIFAR.scaled(2000, warmup=False).warmup_iterations == 0
    assert CIFAR.scaled(2) == Schedule(2, (1, 2), 1)
    assert CIFAR.scaled(1).lr_steps == (1,)  # one step where both round to the same
    with pytest.raises(ValueError, match="at least one iteration"):
        CIFAR.scaled(0)
    with pytest.raises(ValueError, match="in epochs"):
        IMAGENET.scaled(100)


def test_the_flags_of_a_recipe_parse_back_to_it():
    flags = CIFAR.flags(CIFAR.scaled(640), batch_size=64)
    args = train_cifar.parse_args(["--data-dir", "d", "--output-dir", "o", "--num-layers",
                                   "20"] + flags)
    assert (args.num_iters, args.lr_step_iters, args.warmup_iters, args.batch_size) == \
        (640, (320, 480), 4, 64)
    assert (args.lr, args.mom, args.wd, args.optimizer, args.warmup_lr) == \
        (CIFAR.lr, CIFAR.momentum, CIFAR.weight_decay, CIFAR.optimizer, CIFAR.warmup_lr)


def test_default_warmup_only_for_deep_original_cifar_nets():
    assert default_warmup("original", 110, (3, 32, 32)) == 400
    assert default_warmup("original", 1202, (3, 32, 32)) == 400
    assert default_warmup("original", 56, (3, 32, 32)) == 0
    assert default_warmup("full_preact", 1001, (3, 32, 32)) == 0
    assert default_warmup("original", 152, (3, 224, 224)) == 0
