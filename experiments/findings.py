"""The two papers' findings as a registry, and the verdict rule that judges them.

Each finding names what a paper found and where, the networks (rows) that test it, the
protocol they train with, and the orderings it expects. A rule fixed before anything runs
turns per-seed measurements into a verdict:

- a comparison expects ``metric(better) < metric(worse)`` (``margin=0``), or, for a claim
  that one row is *not worse* than another, ``metric(better) <= (1 + margin) metric(worse)``;
- with the paired differences ``d_s = (1 + margin) worse_s - better_s`` over the seeds
  both rows have, it is **reproduced** when the ordering holds for the mean (``mean d > 0``;
  ``>= 0`` for a not-worse claim) and in at least two thirds of the seeds (2 of 3, 4 of 5);
  **not reproduced** when the mean ordering is reversed (``mean d < 0``); **inconclusive**
  otherwise;
- a finding is reproduced when all its comparisons are, not reproduced when any is, and
  inconclusive otherwise.

Reported with each comparison: the mean of ``worse - better`` and its 95 % interval
(Student's t over the paired seeds).

Each protocol's length and number of seeds were chosen from this project's measured
training speed before any of its runs, and are not changed after seeing their results.
"""
import math
import statistics
from collections import namedtuple
from dataclasses import dataclass

from experiments.intervals import interval
from experiments.runner import Row

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_WORSE_MARGIN = 0.05  # a "not worse" row may be up to 5 % (relative) above the other



@dataclass(frozen=True)
class Protocol:
    """How a finding's rows are measured.

    ``kind``: "train" (training runs) or "probe" (gradients at initialisation, no
    training). A training run lasts ``epochs`` epochs or ``iterations`` iterations, with
    the paper's lr steps at 1/2 and 3/4 of it and, where ``warmup``, the paper's warm-up at
    lr 0.01 scaled likewise (the 2016 paper warms up every CIFAR run, the 2015 paper only
    from 110 layers). With ``test_set`` it trains on every training image and is tested on
    the test batch; otherwise it validates on images held out of the training batches.
    ``seeds``: the paired seeds of every row.
    """
    kind: str
    epochs: int = None
    iterations: int = None
    warmup: bool = False
    test_set: bool = False
    seeds: int = 3


Comparison = namedtuple("Comparison", "better worse metric margin text")
Finding = namedtuple("Finding", "id title paper claim rows protocol comparisons")

METRICS = {"train_error": "training error (%)", "train_loss": "training loss",
           "val_error": "validation error (%)", "test_error": "test error (%)",
           "grad_spread": "max/min of |dE/dx_l| over the units",
           "log10_grad_ratio": "log10 |dE/dx_1| / |dE/dx_L|",
           "shortcut_factor": "|dE/dx_l| / |dE/dx_l+1| with F = 0"}


def row(name, num_layers, unit="original", shortcut="identity", projection="B",
        bottleneck=False, **params):
    return Row(name, num_layers, unit, shortcut, params, projection, bottleneck)


def lower(better, worse, metric, text):
    """Expect ``better`` strictly below ``worse`` (``worse`` may be a number)."""
    return Comparison(better, worse, metric, 0.0, text)


def not_worse(better, worse, metric, text):
    """Expect ``better`` no more than NOT_WORSE_MARGIN above ``worse``."""
    return Comparison(better, worse, metric, NOT_WORSE_MARGIN, text)


PLAIN = dict(shortcut="none", projection="B")
F1_ROWS = [row("plain-20", 20, **PLAIN), row("plain-56", 56, **PLAIN),
           row("ResNet-20", 20, projection="A"), row("ResNet-56", 56, projection="A")]
F2_ROWS = [row("identity", 20), row("constant scaling 0.5", 20, shortcut="constant_scaling",
                                    scale=0.5),
           row("exclusive gating b=-6", 20, shortcut="exclusive_gating", gate_bias=-6.0),
           row("shortcut-only gating b=0", 20, shortcut="shortcut_only_gating", gate_bias=0.0),
           row("1x1 conv shortcut", 20, shortcut="conv1x1"),
           row("dropout shortcut 0.5", 20, shortcut="dropout", ratio=0.5)]
F3_ROWS = [row("original", 20), row("BN after addition", 20, unit="bn_after_add"),
           row("full pre-activation", 20, unit="full_preact")]

FINDINGS = [
    # F1: 2,000 iterations on all 50,000 training images, 3 seeds. Measured before its
    # runs (--benchmark, batch 128, 2-core AMD EPYC Zen 3 VM): ResNet-20 (option A) 214
    # and 277 images/s, plain-20 325, ResNet-56 (option A) 86, plain-56 103; so one seed
    # of the four rows trains about 2 hours, and 3 seeds about 6 (less with --jobs 2).
    Finding("F1", "Degradation of plain nets, none with residual learning",
            "He et al. 2015, Sec. 4.2, Fig. 6 (CIFAR-10); Fig. 4 and Table 2 (ImageNet)",
            "The deeper plain net has higher training error than the shallower one, while the "
            "deeper ResNet does not (original units, option A).",
            F1_ROWS, Protocol("train", iterations=2000, warmup=False, test_set=True, seeds=3),
            [lower("plain-20", "plain-56", "train_error",
                   "plain-56 trains to a higher error than plain-20"),
             not_worse("ResNet-56", "ResNet-20", "train_error",
                       "ResNet-56 trains to an error no higher than ResNet-20's")]),
    Finding("F2", "Identity shortcuts ease optimisation the most",
            "He et al. 2016, Table 1 and Fig. 3 (ResNet-110, original units)",
            "Identity shortcuts reach a lower training loss than constant scaling (0.5 on both "
            "paths), exclusive gating (b_g = -6), shortcut-only gating (b_g = 0), 1x1 conv "
            "and dropout shortcuts.",
            F2_ROWS, Protocol("train", epochs=6, warmup=True),
            [lower("identity", r.name, "train_loss", f"identity trains to a lower loss than "
                   f"{r.name}") for r in F2_ROWS[1:]]),
    Finding("F3", "Where the activations go: BN after addition hurts, full pre-activation "
            "does not", "He et al. 2016, Table 2 and Fig. 6 (left), Sec. 4.1",
            "BN after addition trains to a higher loss than the original unit; full "
            "pre-activation is not worse than the original.",
            F3_ROWS, Protocol("train", epochs=6, warmup=True),
            [lower("original", "BN after addition", "train_loss", "BN after addition trains "
                   "to a higher loss than the original unit"),
             not_worse("full pre-activation", "original", "val_error", "full pre-activation "
                       "validates no worse than the original unit")]),
    Finding("F4", "Full pre-activation eases optimisation of very deep nets",
            "He et al. 2016, Fig. 1 and Sec. 4.2 ('Ease of optimization'), Table 3",
            "In a very deep bottleneck net (ResNet-164), full pre-activation reaches a lower "
            "training loss than the original unit early in training.",
            [row("original-164", 164, bottleneck=True),
             row("full pre-activation-164", 164, unit="full_preact", bottleneck=True)],
            Protocol("train", epochs=1, warmup=True),
            [lower("full pre-activation-164", "original-164", "train_loss",
                   "full pre-activation trains to a lower loss early in training")]),
    Finding("F5", "Gradient flow through identity and scaled shortcuts",
            "He et al. 2016, Eqn. 5 and Eqn. 8, Sec. 3",
            "At initialisation, identity shortcuts with full pre-activation keep dE/dx_l within "
            "a small factor across all units, while constant scaling (0.5) makes the shortcut "
            "term decay as lambda^(L-l), so the gradient must flow through the weight layers.",
            [row("full pre-activation, identity", 110, unit="full_preact"),
             row("full pre-activation, constant scaling 0.5", 110, unit="full_preact",
                 shortcut="constant_scaling", scale=0.5)],
            Protocol("probe"),
            [lower("full pre-activation, identity", "full pre-activation, constant scaling 0.5",
                   "grad_spread", "identity keeps |dE/dx_l| within a smaller factor over the "
                   "units than constant scaling"),
             not_worse("full pre-activation, constant scaling 0.5", 0.5, "shortcut_factor",
                       "with F = 0 the gradient shrinks by lambda = 0.5 a unit toward the "
                       "input"),
             lower("full pre-activation, constant scaling 0.5", "full pre-activation, identity",
                   "shortcut_factor", "with F = 0 the gradient shrinks faster toward the input "
                   "with constant scaling than with identity"),
             # The bound first written for "a small factor", before any run; kept and
             # reported (the comparison with constant scaling above replaced it as the claim).
             lower("full pre-activation, identity", 10.0, "grad_spread",
                   "identity keeps |dE/dx_l| within a factor 10 over the units "
                   "(first formulation)")]),
]


def get_findings(only=None):
    """The findings with ids in ``only`` (all when None), in registry order."""
    ids = [f.id for f in FINDINGS]
    unknown = [i for i in only or () if i not in ids]
    if unknown:
        raise ValueError(f"unknown finding {', '.join(unknown)}; valid: {', '.join(ids)}")
    return [f for f in FINDINGS if not only or f.id in only]


def judge(better, worse, margin=0.0):
    """The verdict of one comparison from paired per-seed values.

    ``better`` and ``worse`` map seeds to the metric of the row expected lower and of the
    row expected higher (``worse`` may be a number: a fixed bound). Returns a dict with
    the verdict, the seeds used, how many hold, and the mean of ``worse - better`` with
    its 95 % interval.
    """
    if not isinstance(worse, dict):
        worse = {seed: float(worse) for seed in better}
    seeds = sorted(set(better) & set(worse))
    if not seeds:
        return {"verdict": INCONCLUSIVE, "seeds": [], "holds": 0, "mean_difference": None,
                "ci95": [None, None], "why": "no seed measured in both rows"}
    shifted = [(1 + margin) * worse[s] - better[s] for s in seeds]
    holds = sum(d >= 0 if margin else d > 0 for d in shifted)
    mean_shifted = statistics.fmean(shifted)
    need = math.ceil(2 * len(seeds) / 3)
    if mean_shifted < 0:
        verdict = NOT_REPRODUCED
    elif (mean_shifted >= 0 if margin else mean_shifted > 0) and holds >= need:
        verdict = REPRODUCED
    else:
        verdict = INCONCLUSIVE
    mean, low, high = interval([worse[s] - better[s] for s in seeds])
    return {"verdict": verdict, "seeds": seeds, "holds": holds, "need": need,
            "mean_difference": mean, "ci95": [low, high]}


def overall(verdicts):
    """A finding's verdict from its comparisons' verdicts."""
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if NOT_REPRODUCED in verdicts:
        return NOT_REPRODUCED
    return INCONCLUSIVE
