"""The papers' training recipes, each written once.

The training scripts take their flags' defaults from them (``Recipe.defaults``), the
experiments train with them, whole or shrunk to fewer iterations (``Recipe.scaled``,
``Recipe.flags``), and the 2015 paper's warm-up rule reads them (``default_warmup``).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """How long a run trains and when its learning rate changes, in iterations."""
    iterations: int
    lr_steps: tuple
    warmup_iterations: int


@dataclass(frozen=True)
class Recipe:
    """Optimizer, batch and schedule of a paper. The length is in iterations (with
    ``lr_steps`` in iterations) or in epochs (with ``lr_step_epochs``); ``'original'``
    CIFAR nets from ``warmup_from_depth`` layers on start with ``warmup_iterations`` at
    ``warmup_lr``."""
    batch_size: int
    lr: float
    optimizer: str  # nag (Nesterov momentum) or sgd (with momentum)
    momentum: float
    weight_decay: float
    iterations: int = None
    lr_steps: tuple = ()
    epochs: int = None
    lr_step_epochs: tuple = ()
    lr_factor: float = 0.1
    warmup_lr: float = 0.01
    warmup_iterations: int = 0
    warmup_from_depth: int = None

    def defaults(self):
        """The training flags' defaults (for ``parser.set_defaults``)."""
        values = {"batch_size": self.batch_size, "lr": self.lr, "optimizer": self.optimizer,
                  "mom": self.momentum, "wd": self.weight_decay, "lr_factor": self.lr_factor,
                  "warmup_lr": self.warmup_lr}
        if self.iterations is not None:
            values.update(num_iters=self.iterations, lr_step_iters=join(self.lr_steps))
        if self.epochs is not None:
            values.update(num_epochs=self.epochs, lr_step_epochs=join(self.lr_step_epochs))
        return values

    def scaled(self, iterations=None, warmup=True):
        """The schedule of a run of ``iterations`` (default: the paper's): lr steps and
        warm-up at the same fractions of the run as in the paper (at least one iteration
        each), no warm-up where ``warmup`` is false."""
        if self.iterations is None:
            raise ValueError("a recipe in epochs has no schedule in iterations to scale")
        iterations = self.iterations if iterations is None else int(iterations)
        if iterations < 1:
            raise ValueError(f"a run needs at least one iteration, got {iterations}")
        steps = sorted({max(1, round(s * iterations / self.iterations)) for s in self.lr_steps})
        ramp = max(1, round(self.warmup_iterations * iterations / self.iterations)) \
            if warmup and self.warmup_iterations else 0
        return Schedule(iterations, tuple(steps), ramp)

    def flags(self, schedule, batch_size=None):
        """The training flags of this recipe on ``schedule`` (a Schedule), with every
        value written out, so that a run does not depend on the script's defaults."""
        return ["--num-iters", str(schedule.iterations),
                "--lr-step-iters", join(schedule.lr_steps),
                "--warmup-iters", str(schedule.warmup_iterations),
                "--warmup-lr", str(self.warmup_lr), "--lr", str(self.lr),
                "--lr-factor", str(self.lr_factor), "--mom", str(self.momentum),
                "--wd", str(self.weight_decay), "--optimizer", self.optimizer,
                "--batch-size", str(batch_size or self.batch_size)]


def join(values):
    return ",".join(str(v) for v in values)


# He et al. 2015, Sec. 4.2 (and 2016, Sec. 4): CIFAR, 64k iterations of 128 images,
# lr 0.1 divided by 10 at 32k and 48k, Nesterov momentum 0.9, weight decay 1e-4; ResNet-110
# with original units warms up at lr 0.01 for 400 iterations.
CIFAR = Recipe(batch_size=128, lr=0.1, optimizer="nag", momentum=0.9, weight_decay=1e-4,
               iterations=64000, lr_steps=(32000, 48000), warmup_lr=0.01,
               warmup_iterations=400, warmup_from_depth=110)
# He et al. 2015, Sec. 3.4: ImageNet, batch 256, SGD momentum 0.9, weight decay 1e-4,
# lr 0.1 divided by 10 at epochs 30 and 60 (the paper: when the error plateaus), 90 epochs.
IMAGENET = Recipe(batch_size=256, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=1e-4,
                  epochs=90, lr_step_epochs=(30, 60))


def default_warmup(unit, num_layers, image_shape, recipe=CIFAR):
    """Warm-up iterations of the 2015 paper: ``recipe``'s for CIFAR nets of the original
    unit from its ``warmup_from_depth`` layers on (Sec. 4.2), none otherwise."""
    height = image_shape[1]
    deep = recipe.warmup_from_depth is not None and (num_layers or 0) >= recipe.warmup_from_depth
    return recipe.warmup_iterations if height <= 32 and unit == "original" and deep else 0
