"""The scale the findings train at, and where each run lives.

Every finding's rows train with the paper's CIFAR recipe (``training.recipe``) scaled to
the length in the registry (``experiments.findings``): lr steps at 1/2 and 3/4 of the run,
and the paper's warm-up (400 of 64k iterations at lr 0.01) scaled likewise where the
protocol has one. A protocol on the test set trains on every training image and tests on
the test batch; the others hold out 1,000 training images (stratified by class, fixed) to
validate on. ``--quick`` shrinks all of it to a plumbing check. Runs live in
``OUT/runs/<row key>/seed<k>``, the probes' measurements in ``OUT/probe/<row key>/seed<k>.json``;
the key names everything that defines how the row trains, so findings that train the
same network the same way share its runs.
"""
from dataclasses import dataclass

from training.recipe import CIFAR
from training.rundir import PROBES, RUNS, experiment_run_dir

VALIDATION_IMAGES = 1000
# --quick: the same findings on the smallest nets for one epoch, a plumbing check.
QUICK = dict(validation_images=100, num_examples=192, batch_size=32, probe_batch=16)
QUICK_WARNING = ("QUICK RUN: tiny networks, one epoch, a few hundred images: a plumbing "
                 "check whose verdicts mean nothing")


@dataclass(frozen=True)
class Scale:
    """What a findings run trains on, from a data folder of ``num_train_images``
    training images: the registry's protocols, or the ``--quick`` ones."""
    quick: bool
    num_train_images: int

    @property
    def batch_size(self):
        return QUICK["batch_size"] if self.quick else CIFAR.batch_size

    @property
    def probe_batch(self):
        return QUICK["probe_batch"] if self.quick else CIFAR.batch_size

    def validation_images(self, protocol):
        """Training images held out to validate on (0: the protocol tests on the test set)."""
        if protocol.test_set:
            return 0
        return QUICK["validation_images"] if self.quick else VALIDATION_IMAGES

    def train_images(self, protocol):
        held_out = self.validation_images(protocol)
        available = self.num_train_images - held_out
        if available < self.batch_size:
            raise ValueError(f"the data set has {self.num_train_images} training images: too "
                             f"few to hold out {held_out} and train batches of "
                             f"{self.batch_size}")
        return min(available, QUICK["num_examples"]) if self.quick else available

    def depth(self, row):
        """The depth trained: the row's, or the smallest of its kind in a quick run."""
        if not self.quick:
            return row.num_layers
        return 11 if row.bottleneck else (8 if row.num_layers <= 20 else 20)

    def schedule(self, protocol):
        """The ``training.recipe.Schedule`` of a row under ``protocol``: its iterations, or
        its epochs of this data (one epoch in a quick run)."""
        batches = self.train_images(protocol) // self.batch_size
        if self.quick:
            iterations = batches
        else:
            iterations = protocol.iterations or protocol.epochs * batches
        return CIFAR.scaled(iterations, warmup=protocol.warmup)

    def data_flags(self, protocol):
        """The flags that choose the images a run trains and validates on."""
        flags = []
        if not protocol.test_set:
            flags += ["--validation-images", str(self.validation_images(protocol))]
        if self.quick:  # no more than the data set has beside the held-out images
            flags += ["--num-examples", str(self.train_images(protocol))]
        return flags


def row_key(row, protocol, scale):
    """The folder name of a row's runs: everything that defines how it trains."""
    params = "".join(f"-{k}{v:g}" if isinstance(v, float) else f"-{k}{v}"
                     for k, v in sorted(row.params.items()))
    key = f"r{scale.depth(row)}-{row.unit}-{row.shortcut}{params}-{row.projection}-{row.branch}"
    if protocol.kind == "train":
        schedule = scale.schedule(protocol)
        key += f"-it{schedule.iterations}-wu{schedule.warmup_iterations}"
        key += "-test" if protocol.test_set else ""
    return key + ("-quick" if scale.quick else "")


def run_dir(out_dir, finding, row, scale, seed):
    """The folder of seed ``seed`` of ``row`` of ``finding`` (``training.rundir``'s layout,
    under the row's key)."""
    group = PROBES if finding.protocol.kind == "probe" else RUNS
    return experiment_run_dir(out_dir, row_key(row, finding.protocol, scale), seed, group)


def seeds_of(finding, seeds=None):
    """The seeds measured for ``finding``: ``seeds`` where given, else its protocol's."""
    return seeds or finding.protocol.seeds
