"""The findings registry, its verdict rule, and ``python -m experiments findings``."""
import json
import os

import numpy as np
import pytest

import symbols
from data import stratified_split
from experiments import evidence
from experiments.findings import (FINDINGS, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED,
                                  get_findings, interval, judge, overall, t_quantile)
from train_support import run_script

ROWS = [(f, r) for f in FINDINGS for r in f.rows]
QUICK_IDS = ["F1", "F3", "F5"]


@pytest.mark.parametrize("finding,row", ROWS, ids=[f"{f.id}-{r.name}" for f, r in ROWS])
def test_every_row_builds_at_its_depth_and_its_quick_depth(finding, row):
    for quick in (False, True):
        depth = evidence.Scale(quick, 5085).depth(row)
        net = symbols.get_symbol(10, depth, (3, 32, 32), unit=row.unit, shortcut=row.shortcut,
                                 projection=row.projection, bottleneck=row.bottleneck,
                                 **row.params)
        _, out, _ = net.infer_shape(data=(2, 3, 32, 32), softmax_label=(2,))
        assert out == [(2, 10)]


def test_registry_entries_are_complete_and_compare_their_own_rows():
    assert len(FINDINGS) >= 5 and len({f.id for f in FINDINGS}) == len(FINDINGS)
    for f in FINDINGS:
        assert f.paper and f.claim and f.rows and f.comparisons
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


def test_shortcut_factor_pairs_units_within_a_stage():
    units = ["stage1_unit1", "stage1_unit2", "stage1_unit3", "stage2_unit1", "stage2_unit2",
             "stage2_unit3"]
    # 0.5 a unit inside the stages; the projection units (unit1) are left out.
    norms = [9.0, 0.25, 0.5, 7.0, 0.5, 1.0]
    assert evidence.shortcut_factor(units, norms) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="three units a stage"):
        evidence.shortcut_factor(units[:2], norms[:2])


def findings_cli(*args):
    result = run_script(["-m", "experiments", "findings", *args], timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def quick_run(generated_cifar10, tmp_path_factory):
    """F1, F3 and F5 with --quick, 2 seeds, on the real images where they are beside the
    checkout, else on generated data: (data dir, out dir, output). (F2 and F4 run the
    same code with other rows, which the tests above build.)"""
    from conftest import SHARED_CIFAR
    data_dir = SHARED_CIFAR if os.path.isfile(os.path.join(SHARED_CIFAR, "data_batch_5")) \
        else generated_cifar10
    out = str(tmp_path_factory.mktemp("findings"))
    result = findings_cli("--data-dir", data_dir, "--out", out, "--quick", "--seeds", "2",
                          "--only", ",".join(QUICK_IDS))
    return data_dir, out, result.stdout + result.stderr


def quick_scale(data_dir):
    from data import load_cifar
    return evidence.Scale(True, len(load_cifar(data_dir)[1]))


def test_quick_run_writes_json_md_and_figures(quick_run):
    data_dir, out, log = quick_run
    assert evidence.QUICK_WARNING in log
    with open(os.path.join(out, "findings.json")) as f:
        records = json.load(f)
    assert [r["id"] for r in records] == QUICK_IDS
    for r in records:
        assert r["verdict"] in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
        assert r["quick"] and r["seeds"] == 2 and r["paper"] and r["claim"] and r["protocol"]
        for name, measured in r["seeds_measured"].items():
            assert measured == [0, 1], (r["id"], name)
        for c in r["numbers"]["comparisons"]:
            assert len(c["seeds"]) == 2 and c["mean_difference"] is not None
        for ext in ("png", "pdf"):
            assert os.path.getsize(os.path.join(out, "figures", f"{r['id']}.{ext}")) > 1000
    md = open(os.path.join(out, "findings.md")).read()
    assert "QUICK RUN" in md and md.count("![F") == len(QUICK_IDS)
    scale = quick_scale(data_dir)
    keys = {evidence.row_key(r, f.protocol, scale) for f in get_findings(QUICK_IDS)
            if f.protocol.kind == "train" for r in f.rows}
    assert sorted(os.listdir(os.path.join(out, "runs"))) == sorted(keys)
    # Eqn. 8 with F = 0: the gradient shrinks by exactly lambda a unit; identity keeps it.
    f5 = records[-1]["numbers"]["rows"]
    assert f5["full pre-activation, constant scaling 0.5"]["shortcut_factor"]["mean"] == \
        pytest.approx(0.5, rel=1e-3)
    assert f5["full pre-activation, identity"]["shortcut_factor"]["mean"] == \
        pytest.approx(1.0, rel=1e-3)


def test_interrupted_run_resumes_without_redoing_finished_runs(quick_run):
    data_dir, out, _ = quick_run
    f1 = FINDINGS[0]
    scale = quick_scale(data_dir)
    dirs = [evidence.run_dir(out, f1, r, scale, s) for r in f1.rows for s in (0, 1)]
    os.remove(os.path.join(dirs[0], "done.json"))  # killed before it was marked done
    stamps = {d: os.path.getmtime(os.path.join(d, "metrics.jsonl")) for d in dirs[1:]}
    result = findings_cli("--data-dir", data_dir, "--out", out, "--quick", "--seeds", "2",
                          "--only", "F1")
    log = result.stdout + result.stderr
    assert log.count("done before, skipped") == 7 and log.count("resuming") == 1
    assert f"{dirs[0]}: resuming" in log
    assert os.path.isfile(os.path.join(dirs[0], "done.json"))
    assert stamps == {d: os.path.getmtime(os.path.join(d, "metrics.jsonl")) for d in dirs[1:]}
    records = json.load(open(os.path.join(out, "findings.json")))
    assert [r["id"] for r in records] == ["F1"] and records[0]["seeds_measured"]["plain-20"] \
        == [0, 1]


def test_findings_errors_are_one_line(tmp_path):
    listed = run_script(["-m", "experiments", "findings", "--list"])
    assert listed.returncode == 0 and all(f.id in listed.stdout for f in FINDINGS)
    for args, message in ((["--out", str(tmp_path)], "give --data-dir and --out"),
                          (["--data-dir", str(tmp_path), "--out", str(tmp_path), "--only",
                            "F7"], "unknown finding F7"),
                          (["--data-dir", str(tmp_path), "--out", str(tmp_path)],
                           "no CIFAR-10")):
        result = run_script(["-m", "experiments", "findings", *args])
        assert result.returncode != 0
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
            result.stderr


def test_findings_that_train_the_same_network_share_its_runs(tmp_path):
    # F2's identity row and F3's original unit are one network trained one way.
    f2, f3 = get_findings(["F2", "F3"])
    scale = evidence.Scale(False, 5085)
    runs = evidence.training_runs([f2, f3], str(tmp_path), "cifar", scale, seeds=3)
    assert len(runs) == (len(f2.rows) + len(f3.rows) - 1) * 3
    assert len({d for d, _ in runs}) == len(runs)
    cmd = dict(runs)[evidence.run_dir(str(tmp_path), f3, f3.rows[0], scale, 2)]
    assert cmd[cmd.index("--seed") + 1] == "2" and "--validation-images" in cmd
    assert cmd[cmd.index("--num-iters") + 1] == str(6 * (4085 // 128))


def test_a_findings_folder_in_use_is_refused(generated_cifar10, tmp_path):
    from common.files import FolderLockedError
    from experiments.launch import RUNNER_LOCK
    from train_support import hold_in_child
    out = tmp_path / "findings"
    holder = hold_in_child(out, RUNNER_LOCK)
    try:
        with pytest.raises(FolderLockedError, match=f"{out} is in use by process {holder.pid}"):
            evidence.run_findings(generated_cifar10, str(out), ["F1", "F5"], seeds=1,
                                  quick=True, log=lambda _: None)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert os.listdir(out) == [RUNNER_LOCK]  # no probe, no run started
