"""The findings registry and its verdict rule (experiments/findings.py)."""
import numpy as np
import pytest

from data import stratified_split
from experiments.findings import (FINDINGS, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED,
                                  get_findings, judge, overall)
from experiments.intervals import interval, summary, t_quantile


def test_registry_entries_are_complete_and_compare_their_own_rows():
    assert len(FINDINGS) >= 5 and len({f.id for f in FINDINGS}) == len(FINDINGS)
    for f in FINDINGS:
        assert f.paper and f.claim and f.rows and f.comparisons and f.protocol.seeds >= 2
        if f.protocol.kind == "train":
            assert bool(f.protocol.epochs) != bool(f.protocol.iterations)
        names = {r.name for r in f.rows}
        for c in f.comparisons:
            assert c.better in names
            assert c.worse in names or isinstance(c.worse, float)
    with pytest.raises(ValueError, match="unknown finding F9; valid: F1"):
        get_findings(["F9"])


def seeds(*values):
    return dict(enumerate(values))


def test_verdict_holds_reversed_mixed_and_ties():
    # The paper's ordering (first row lower) in every seed: reproduced.
    assert judge(seeds(1.0, 1.1, 0.9), seeds(1.5, 1.4, 1.6))["verdict"] == REPRODUCED
    # Reversed on the mean: not reproduced, even where one seed agrees.
    assert judge(seeds(1.5, 1.4, 1.0), seeds(1.0, 1.1, 1.2))["verdict"] == NOT_REPRODUCED
    # The mean holds but only 1 of 3 seeds does: inconclusive.
    mixed = judge(seeds(1.0, 1.0, 0.0), seeds(0.9, 0.9, 3.0))
    assert mixed["verdict"] == INCONCLUSIVE and mixed["holds"] == 1
    # 2 of 3 seeds and the mean: reproduced.
    assert judge(seeds(1.0, 1.0, 1.0), seeds(0.9, 1.5, 1.5))["verdict"] == REPRODUCED
    # Exact ties: a strict ordering does not hold, a "not worse" claim does.
    assert judge(seeds(1.0, 1.0, 1.0), seeds(1.0, 1.0, 1.0))["verdict"] == INCONCLUSIVE
    assert judge(seeds(1.0, 1.0, 1.0), seeds(1.0, 1.0, 1.0), margin=0.05)["verdict"] == \
        REPRODUCED


def test_verdict_margin_bound_seed_pairing_and_five_seeds():
    # Not worse: 4 % above holds within a 5 % margin, 10 % above does not.
    assert judge(seeds(1.04, 1.04, 1.04), seeds(1, 1, 1), 0.05)["verdict"] == REPRODUCED
    assert judge(seeds(1.1, 1.1, 1.1), seeds(1, 1, 1), 0.05)["verdict"] == NOT_REPRODUCED
    # A fixed bound instead of a row.
    assert judge(seeds(5.0, 6.0, 7.0), 10.0)["verdict"] == REPRODUCED
    # Only seeds measured in both rows pair.
    paired = judge({0: 1.0, 1: 1.0, 2: 1.0}, {1: 2.0, 2: 2.0})
    assert paired["seeds"] == [1, 2] and paired["verdict"] == REPRODUCED
    # Five seeds need four that hold.
    assert judge(seeds(*[1.0] * 5), seeds(2, 2, 2, 0.9, 0.9))["verdict"] == INCONCLUSIVE
    assert judge(seeds(*[1.0] * 5), seeds(2, 2, 2, 2, 0.9))["verdict"] == REPRODUCED
    assert judge({}, seeds(1.0))["verdict"] == INCONCLUSIVE


def test_interval_and_t_quantiles():
    assert t_quantile(2) == pytest.approx(4.303)
    assert t_quantile(30) == pytest.approx(2.042, abs=2e-3)
    assert t_quantile(100) == pytest.approx(1.984, abs=2e-3)
    mean, low, high = interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, n 3: 2 +- 4.303 / sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2 - 2.4843, 2 + 2.4843), abs=1e-3)
    assert interval([1.0])[1:] == (None, None)
    result = judge(seeds(1.0, 1.0, 1.0), seeds(2.0, 3.0, 4.0))
    assert result["mean_difference"] == pytest.approx(2.0)
    assert result["ci95"] == pytest.approx([2 - 2.4843, 2 + 2.4843], abs=1e-3)


def test_overall_verdict():
    assert overall([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert overall([REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE
    assert overall([REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE]) == NOT_REPRODUCED
    assert overall([]) == INCONCLUSIVE


def test_stratified_split_is_fixed_disjoint_and_proportional():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    train, val = stratified_split(labels, 20)
    assert len(val) == 20 and len(train) == 80 and not set(train) & set(val)
    assert np.bincount(labels[val]).tolist() == [10, 6, 3, 1]
    again = stratified_split(labels, 20)
    assert np.array_equal(again[1], val)
    with pytest.raises(ValueError, match="cannot hold out 100 of 100"):
        stratified_split(labels, 100)




def test_degradation_is_measured_as_fixed_before_its_runs():
    """F1 on the whole data set: 2,000 iterations (steps at 1,000 and 1,500), 3 seeds,
    tested on the test batch, the 2015 paper's depths 20 and 56 with option A."""
    f1 = get_findings(["F1"])[0]
    assert (f1.protocol.iterations, f1.protocol.seeds, f1.protocol.test_set,
            f1.protocol.warmup) == (2000, 3, True, False)
    assert [(r.name, r.num_layers, r.shortcut) for r in f1.rows] == [
        ("plain-20", 20, "none"), ("plain-56", 56, "none"), ("ResNet-20", 20, "identity"),
        ("ResNet-56", 56, "identity")]
    assert {r.projection for r in f1.rows if r.shortcut == "identity"} == {"A"}
    assert [(c.better, c.worse, c.metric) for c in f1.comparisons] == [
        ("plain-20", "plain-56", "train_error"), ("ResNet-56", "ResNet-20", "train_error")]


def test_a_rows_summary_over_its_seeds():
    assert summary([1.0, 3.0]) == {"per_seed": [1.0, 3.0], "mean": 2.0,
                                   "std": pytest.approx(2 ** 0.5)}
    assert summary([4.0]) == {"per_seed": [4.0], "mean": 4.0, "std": None}
    assert summary([]) == {"per_seed": [], "mean": None, "std": None}
