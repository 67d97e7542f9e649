"""The F1 record in docs/findings/f1-cifar10: its runs are the registry's, finished at the
protocol's last iteration, its findings.json is what the committed metrics give, and the
README and docs/findings state those numbers."""
import json
import os
import re

import pytest

from experiments import findings as registry
from experiments.scale import Scale, run_dir
from experiments.verdicts import finding_record
from tests.train_support import ROOT
from training.rundir import read_config, read_metrics

RECORD = os.path.join(ROOT, "docs", "findings", "f1-cifar10")
SCALE = Scale(quick=False, num_train_images=50_000)


@pytest.fixture(scope="module")
def f1():
    (finding,) = registry.get_findings(["F1"])
    return finding


def committed():
    with open(os.path.join(RECORD, "findings.json")) as f:
        (record,) = json.load(f)
    return record


def test_every_run_is_the_registrys_and_finished(f1):
    for row in f1.rows:
        for seed in range(f1.protocol.seeds):
            path = run_dir(RECORD, f1, row, SCALE, seed)
            config = read_config(path)
            assert (config["num_layers"], config["unit"], config["shortcut"], config["seed"]) \
                == (row.num_layers, row.unit, row.shortcut, seed)
            assert not config["validation_split"] and config["validation_images"] is None
            assert read_metrics(path, required=True)[-1]["iteration"] == f1.protocol.iterations


def test_findings_json_is_what_the_committed_metrics_give(f1):
    record, _ = finding_record(f1, RECORD, SCALE)
    stored = committed()
    assert record["verdict"] == stored["verdict"]
    assert record["protocol"] == stored["protocol"]
    for got, want in zip(record["numbers"]["comparisons"], stored["numbers"]["comparisons"]):
        assert got["holds"] == want["holds"] and got["verdict"] == want["verdict"]
        assert got["mean_difference"] == pytest.approx(want["mean_difference"])
        assert got["ci95"] == pytest.approx(want["ci95"])
    for name, metrics in stored["numbers"]["rows"].items():
        for metric, summary in metrics.items():
            assert record["numbers"]["rows"][name][metric]["per_seed"] == \
                pytest.approx(summary["per_seed"])


def test_readme_and_docs_state_the_measured_differences():
    """The README's F1 row rounds to one decimal, docs/findings to two."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    (row,) = re.findall(r"^\| F1 .*$", readme, re.M)
    with open(os.path.join(ROOT, "docs", "findings", "README.md")) as f:
        docs = f.read()
    row = row.replace("\u2212", "-")
    for c in committed()["numbers"]["comparisons"]:
        low, high = c["ci95"]
        difference = abs(c["mean_difference"])
        # either sign: "A is 15.8 above B" is the json's B - A = -15.8
        intervals = (f"[{low:.1f}, {high:.1f}]", f"[{-high:.1f}, {-low:.1f}]")
        assert f"{difference:.1f}" in row and any(i in row for i in intervals), row
        assert f"{difference:.2f}" in docs and f"{abs(low):.2f}" in docs \
            and f"{abs(high):.2f}" in docs
    assert "not reproduced" in row
    assert "docs/findings/f1-cifar10/figures/F1.png" in readme
    assert os.path.getsize(os.path.join(RECORD, "figures", "F1.png")) > 10_000
