"""Learning-rate schedules as pure functions of the iteration, with constant warm-up.

The papers state their schedules in iterations (CIFAR: 0.1, /10 at 32k and 48k, stop at
64k, 2015 paper Sec. 4.2) or in epochs (ImageNet: /10 at epochs 30 and 60). ``plan``
turns either form into iterations once the number of batches per epoch is known. The
papers' values are in ``training.recipe``; a schedule without steps or warm-up keeps
``base_lr`` throughout.
"""
import math
from bisect import bisect_right


class StepSchedule:
    """lr(t) = warmup_lr for t < warmup_iters, else base_lr * factor ** #{s in steps: s <= t}.

    ``t`` counts the updates already made (0 for the first batch). As the
    ``lr_scheduler`` of an MXNet optimizer it is called with the 1-based ``num_update``
    (and gets ``base_lr`` from the optimizer's learning rate); on an asynchronous
    parameter server every worker's push is an update, so ``updates_per_iter`` (the number
    of workers) converts updates back to iterations. It imports nothing from MXNet, so the
    servers can unpickle it while MXNet is still being imported.
    """

    def __init__(self, base_lr, steps=(), factor=1.0, warmup_iters=0, warmup_lr=None,
                 updates_per_iter=1):
        self.base_lr = base_lr
        steps = [int(s) for s in steps]
        if any(b <= a for a, b in zip(steps, steps[1:])) or any(s < 1 for s in steps):
            raise ValueError(f"lr steps must be positive and increasing, got {steps}")
        if not 0 < factor <= 1:
            raise ValueError(f"lr factor must be in (0, 1], got {factor}")
        if warmup_iters < 0:
            raise ValueError(f"warm-up iterations must be >= 0, got {warmup_iters}")
        if warmup_iters and warmup_lr is None:
            raise ValueError("a warm-up needs its learning rate")
        self.steps, self.factor = steps, factor
        self.warmup_iters, self.warmup_lr = int(warmup_iters), warmup_lr
        self.updates_per_iter = max(1, int(updates_per_iter))

    def lr(self, iteration):
        """The learning rate of the update made at 0-based ``iteration``."""
        if iteration < self.warmup_iters:
            return self.warmup_lr
        return self.base_lr * self.factor ** bisect_right(self.steps, iteration)

    def __call__(self, num_update):
        return self.lr(max(0, num_update - 1) // self.updates_per_iter)


def plan(batches_per_epoch, num_epochs=None, num_iters=None, lr_step_epochs=(),
         lr_step_iters=()):
    """(number of epochs, lr steps in iterations, iterations) of a run.

    Epoch settings win over iteration settings when both are given; the steps are
    sequences of ints (``training.args`` parses the flags' text). A
    length in iterations ends inside the last epoch where it is not a whole number of
    epochs (64k iterations of 390 batches: 164 whole epochs and 40 batches of a 165th).
    """
    if batches_per_epoch < 1:
        raise ValueError("the training set gives no batch: it is smaller than one batch")
    if num_epochs is not None:
        epochs = int(num_epochs)
        iterations = epochs * batches_per_epoch
    elif num_iters is not None:
        iterations = int(num_iters)
        epochs = math.ceil(iterations / batches_per_epoch)
    else:
        raise ValueError("give the length of training: --num-epochs or --num-iters")
    if epochs < 0:
        raise ValueError(f"the number of epochs must be >= 0, got {epochs}")
    if lr_step_epochs:
        steps = [int(e) * batches_per_epoch for e in lr_step_epochs]
    else:
        steps = [int(step) for step in lr_step_iters or ()]
    return epochs, steps, iterations
