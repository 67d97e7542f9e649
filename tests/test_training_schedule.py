"""The learning-rate schedule: the papers' steps and warm-up, iterations vs epochs."""
import pytest

from training.recipe import CIFAR
from training.schedule import StepSchedule, plan


def test_cifar_recipe_steps_at_32k_and_48k():
    s = StepSchedule(0.1, [32000, 48000], CIFAR.lr_factor)
    assert s.lr(0) == 0.1 and s.lr(31999) == 0.1
    assert s.lr(32000) == pytest.approx(0.01) and s.lr(47999) == pytest.approx(0.01)
    assert s.lr(48000) == pytest.approx(0.001) and s.lr(63999) == pytest.approx(0.001)


def test_warmup_is_constant_then_back_to_the_base_rate():
    # 2015 paper, Sec. 4.2: lr 0.01 for the first ~400 iterations of ResNet-110.
    s = StepSchedule(0.1, [32000], CIFAR.lr_factor, warmup_iters=400, warmup_lr=0.01)
    assert [s.lr(i) for i in (0, 399, 400, 32000)] == pytest.approx([0.01, 0.01, 0.1, 0.01])


def test_called_by_the_optimizer_with_one_based_update_counts():
    s = StepSchedule(0.1, [3], 0.1)
    assert [s(n) for n in (1, 2, 3, 4, 5)] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01])
    # an asynchronous parameter server counts one update per worker push
    s2 = StepSchedule(0.1, [3], 0.1, updates_per_iter=2)
    assert [s2(n) for n in (6, 7, 8)] == pytest.approx([0.1, 0.01, 0.01])


def test_base_lr_set_by_the_optimizer_is_used():
    from common.mx import mx
    s = StepSchedule(0.1, [2], 0.1)
    opt = mx.optimizer.create("nag", learning_rate=0.4, lr_scheduler=s, momentum=0.9)
    assert s.lr(0) == 0.4 and s.lr(2) == pytest.approx(0.04)
    assert opt.learning_rate == 0.4


def test_plan_in_iterations_ends_inside_the_last_epoch():
    # 50k images / 128 = 390 batches: 64k iterations are 164 epochs and 40 batches
    assert plan(390, num_iters=64000, lr_step_iters=(32000, 48000)) == (165, [32000, 48000],
                                                                        64000)
    assert plan(391, num_iters=64000)[::2] == (164, 64000)
    assert plan(10, num_iters=30)[::2] == (3, 30)


def test_plan_in_epochs_wins_over_iterations():
    assert plan(391, num_epochs=164, num_iters=64000, lr_step_epochs=(81, 122),
                lr_step_iters=(32000, 48000)) == (164, [81 * 391, 122 * 391], 164 * 391)


@pytest.mark.parametrize("kwargs,message", [
    (dict(batches_per_epoch=0, num_epochs=1), "smaller than one batch"),
    (dict(batches_per_epoch=10), "--num-epochs or --num-iters"),
])
def test_plan_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan(**kwargs)


@pytest.mark.parametrize("steps,factor", [([5, 3], 0.1), ([0], 0.1), ([3], 0.0), ([3], 2.0)])
def test_bad_schedules_are_refused(steps, factor):
    with pytest.raises(ValueError):
        StepSchedule(0.1, steps, factor)


def test_without_steps_or_warm_up_the_rate_stays_and_a_warm_up_needs_its_rate():
    assert [StepSchedule(0.05).lr(i) for i in (0, 10 ** 6)] == [0.05, 0.05]
    with pytest.raises(ValueError, match="a warm-up needs its learning rate"):
        StepSchedule(0.1, [3], 0.1, warmup_iters=2)
