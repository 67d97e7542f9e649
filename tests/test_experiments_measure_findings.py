"""``python3 -m experiments findings`` (experiments/measure_findings.py): every row trains
the network it names with its protocol, probes, a quick run end to end, resume, sharing,
errors."""
import json
import os
from dataclasses import replace

import pytest

import symbols
from experiments import flow, measure_findings
from experiments.findings import (FINDINGS, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED,
                                  get_findings)
from experiments.scale import QUICK_WARNING, Scale, row_key, run_dir
from training.rundir import RUNNER_LOCK
from tests.experiments_support import (PAPER_PARAMS, identity_params, row_network,
                                       shortcut_params)
from train_support import run_script, small_cifar

TRAINED = [(f, r) for f in FINDINGS if f.protocol.kind == "train" for r in f.rows]
QUICK_IDS = ["F1", "F3", "F5"]
WHOLE = Scale(False, 50000)  # the whole CIFAR-10
SAMPLE = Scale(False, 5085)  # the shared sample


@pytest.mark.parametrize("finding,row", TRAINED, ids=[f"{f.id}-{r.name}" for f, r in TRAINED])
def test_every_row_trains_the_network_it_names(finding, row, tmp_path):
    """A row's command (full and quick) parses to its unit, shortcut and settings and builds
    the graph ``symbols`` makes of them; at full depth it has the paper's parameters
    (within 2 %; plain nets as many as option A ResNets) plus exactly what its shortcut
    adds."""
    counts = []
    for scale in (WHOLE, Scale(True, 5085)):
        runs = dict(measure_findings.training_runs([finding], str(tmp_path), "cifar", scale))
        cmd = runs[run_dir(str(tmp_path), finding, row, scale, 0)]
        counts.append(row_network(cmd, row, scale.depth(row))[1])
    depth = row.num_layers
    # a plain net has no projection: it has the parameters of the option A ResNet
    base = identity_params(replace(row, projection="A") if row.shortcut == "none" else row,
                           depth)
    assert abs(base - PAPER_PARAMS[depth]) / PAPER_PARAMS[depth] < 0.02
    assert counts[0] - base == shortcut_params(row.shortcut, depth)


def test_probe_rows_are_the_nets_they_name():
    f5 = get_findings(["F5"])[0]
    for row in f5.rows:
        net = symbols.get_symbol(10, row.num_layers, (3, 32, 32), unit=row.unit,
                                 shortcut=row.shortcut, projection=row.projection, probe=True,
                                 **row.params)
        count = symbols.num_params(net, (3, 32, 32))
        assert abs(count - PAPER_PARAMS[110]) / PAPER_PARAMS[110] < 0.02
        scales = [n for n in net.list_arguments() if n.endswith("_probe")]
        assert len(scales) == 54  # one probe a unit: 3 stages of 18


def test_f1_trains_on_every_image_and_tests_on_the_test_batch(tmp_path):
    f1 = get_findings(["F1"])[0]
    runs = measure_findings.training_runs([f1], str(tmp_path), "cifar", WHOLE)
    assert len(runs) == 4 * 3
    for _, cmd in runs:
        assert "--validation-images" not in cmd and "--num-examples" not in cmd
        values = {flag: cmd[cmd.index(flag) + 1] for flag in
                  ("--num-iters", "--lr-step-iters", "--warmup-iters", "--batch-size")}
        assert values == {"--num-iters": "2000", "--lr-step-iters": "1000,1500",
                          "--warmup-iters": "0", "--batch-size": "128"}
    assert all(d.endswith(("-it2000-wu0-test/seed0", "-it2000-wu0-test/seed1",
                           "-it2000-wu0-test/seed2")) for d, _ in runs)


def test_shortcut_factor_pairs_units_within_a_stage():
    units = ["stage1_unit1", "stage1_unit2", "stage1_unit3", "stage2_unit1", "stage2_unit2",
             "stage2_unit3"]
    # 0.5 a unit inside the stages; the projection units (unit1) are left out.
    norms = [9.0, 0.25, 0.5, 7.0, 0.5, 1.0]
    assert flow.shortcut_factor(units, norms) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="three units a stage"):
        flow.shortcut_factor(units[:2], norms[:2])


def findings_cli(*args):
    result = run_script(["-m", "experiments", "findings", *args], timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def quick_run(generated_cifar10, tmp_path_factory):
    """F1, F3 and F5 with --quick, 2 seeds, on a folder of the real sample's images (with a
    test batch, which F1 tests on) where they are beside the checkout, else on generated
    data: (data dir, out dir, output). (F2 and F4 run the same code with other rows, which
    the tests above build.)"""
    from conftest import SHARED_CIFAR
    data_dir = generated_cifar10
    if os.path.isfile(os.path.join(SHARED_CIFAR, "data_batch_5")):
        data_dir = small_cifar(SHARED_CIFAR, tmp_path_factory.mktemp("real"),
                               train_per_batch=60, test_size=100)
    out = str(tmp_path_factory.mktemp("findings"))
    result = findings_cli("--data-dir", data_dir, "--out", out, "--quick", "--seeds", "2",
                          "--only", ",".join(QUICK_IDS))
    return data_dir, out, result.stdout + result.stderr


def quick_scale(data_dir):
    from data import cifar_folder, load_cifar
    return Scale(True, len(load_cifar(cifar_folder(data_dir, "cifar10"))[1]))


def test_quick_run_writes_json_md_and_figures(quick_run):
    data_dir, out, log = quick_run
    assert QUICK_WARNING in log
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
    keys = {row_key(r, f.protocol, scale) for f in get_findings(QUICK_IDS)
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
    dirs = [run_dir(out, f1, r, scale, s) for r in f1.rows for s in (0, 1)]
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


def test_f1_without_a_test_batch_stops_in_one_line(generated_cifar10, tmp_path):
    import shutil
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(generated_cifar10, folder)
    os.remove(folder / "test_batch")
    result = run_script(["-m", "experiments", "findings", "--data-dir", str(tmp_path),
                         "--out", str(tmp_path / "out"), "--only", "F1,F3"])
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"python -m experiments: error: F1: tested on the test batch, and {folder} has no "
        "test_batch (the whole CIFAR-10 has one)"]
    assert not os.path.exists(tmp_path / "out")


def test_findings_that_train_the_same_network_share_its_runs(tmp_path):
    # F2's identity row and F3's original unit are one network trained one way.
    f2, f3 = get_findings(["F2", "F3"])
    scale = Scale(False, 5085)
    runs = measure_findings.training_runs([f2, f3], str(tmp_path), "cifar", scale, seeds=3)
    assert len(runs) == (len(f2.rows) + len(f3.rows) - 1) * 3
    assert len({d for d, _ in runs}) == len(runs)
    cmd = dict(runs)[run_dir(str(tmp_path), f3, f3.rows[0], scale, 2)]
    assert cmd[cmd.index("--seed") + 1] == "2" and "--validation-images" in cmd
    assert cmd[cmd.index("--num-iters") + 1] == str(6 * (4085 // 128))


def test_a_findings_folder_in_use_is_refused(generated_cifar10, tmp_path):
    from common.files import FolderLockedError
    from train_support import hold_in_child
    out = tmp_path / "findings"
    holder = hold_in_child(out, RUNNER_LOCK)
    try:
        with pytest.raises(FolderLockedError, match=f"{out} is in use by process {holder.pid}"):
            measure_findings.run_findings(generated_cifar10, str(out), ["F1", "F5"], seeds=1,
                                          quick=True, log=lambda _: None)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert os.listdir(out) == [RUNNER_LOCK]  # no probe, no run started
