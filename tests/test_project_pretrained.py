"""The pretrained ResNet-20 in pretrained/resnet20-cifar10: its files are the ones its
checksums name, it is the 2015 paper's ResNet-20 at the last iteration of the run in
docs/results, MXNet and onnxruntime compute the same classes, it classifies from the
checkout with nothing trained, and, where the shared CIFAR-10 archive is present, its test
error is the one the README states."""
import json
import os
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from common.files import file_sha256
from data.download import download_cifar
from tests.conftest import SHARED_DATA
from tests.train_support import ROOT, run_script
from training.classify import INFO, PARAMS_FILE, SYMBOL_FILE, Classifier, error_rate
from training.classify import read_test_set
from training.export import generated_images
from training.rundir import read_config, read_metrics

PRETRAINED = os.path.join("pretrained", "resnet20-cifar10")
MODEL_DIR = os.path.join(ROOT, PRETRAINED)
RUN_RECORD = os.path.realpath(os.path.join(ROOT, "docs", "results", "resnet20-cifar10"))
ARCHIVE = os.path.join(SHARED_DATA, "cifar-10-python-jpeg.tar.xz")
ARCHIVE_MD5 = "6f41454d71d631416f02317b7e27854d"
FILES = (SYMBOL_FILE, PARAMS_FILE, "model.onnx", INFO, "README.md")
PAPER_PARAMS = 269_722  # Table 6's 0.27M, counted: 16-32-64 widths, option A, 10 classes
# the README's first result: "... `pretrained/resnet20-cifar10` ... test error 8.xx % ..."
STATED = re.compile(r"`pretrained/resnet20-cifar10`[^|\n]*?test error (\d+\.\d\d) %")


def info():
    with open(os.path.join(MODEL_DIR, INFO)) as f:
        return json.load(f)


def stated_error():
    """The test error the README states for the pretrained network."""
    with open(os.path.join(ROOT, "README.md")) as f:
        found = STATED.findall(f.read())
    assert len(found) == 1, "the README states the pretrained network's test error once"
    return float(found[0])


def test_the_files_are_committed_and_are_the_ones_their_checksums_name():
    if os.path.isdir(os.path.join(ROOT, ".git")):
        tracked = subprocess.run(["git", "ls-files", PRETRAINED], cwd=ROOT, text=True,
                                 capture_output=True, check=True).stdout.split()
        assert sorted(tracked) == sorted(os.path.join(PRETRAINED, f) for f in FILES)
    record = info()
    sums = dict(record["sha256"], **{record["onnx"]["file"]: record["onnx"]["sha256"]})
    assert set(sums) == {SYMBOL_FILE, PARAMS_FILE, "model.onnx"}
    for name, digest in sums.items():
        assert file_sha256(os.path.join(MODEL_DIR, name)) == digest, name


def test_it_is_the_papers_resnet20_after_the_last_iteration_of_the_recorded_run():
    from common.mx import mx
    record, config = info(), read_config(RUN_RECORD)
    assert (record["num_layers"], record["unit"], record["shortcut"], record["projection"]) \
        == (20, "original", "identity", "A")
    assert record["dataset"] == "cifar10" and record["classes"] == config["classes"]
    assert record["preprocess"] == config["preprocess"]
    last = read_metrics(RUN_RECORD)[-1]
    assert last["iteration"] == 64_000 and record["epoch"] == last["epoch"]
    assert os.path.realpath(os.path.join(MODEL_DIR, record["run_dir"])) == RUN_RECORD
    params = mx.nd.load(os.path.join(MODEL_DIR, PARAMS_FILE))
    assert sum(v.size for k, v in params.items() if k.startswith("arg:")) == PAPER_PARAMS


def test_mxnet_and_onnxruntime_give_the_same_probabilities():
    images = generated_images(64, info()["preprocess"])
    mxnet = Classifier(MODEL_DIR, batch_size=64).probabilities(images)
    onnx = Classifier(MODEL_DIR, backend="onnx").probabilities(images)
    np.testing.assert_allclose(onnx, mxnet, atol=1e-4)
    assert (onnx.argmax(axis=1) == mxnet.argmax(axis=1)).all()


def test_it_classifies_an_image_from_the_checkout_through_both_backends(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    image = str(tmp_path / "image.png")
    Image.fromarray(pixels).save(image)
    lines = []
    for backend in ([], ["--onnx"]):
        out = run_script(["-m", "training.classify", PRETRAINED, image, "--top-k", "3"]
                         + backend)
        assert out.returncode == 0, out.stderr
        [line] = out.stdout.splitlines()
        lines.append(line)
    names = [re.findall(r"(\w+) (\d\.\d{3})", line) for line in lines]
    assert [n for n, _ in names[0]] == [n for n, _ in names[1]]
    assert {n for n, _ in names[0]} <= set(info()["classes"]) and len(names[0]) == 3


def test_the_readme_and_the_model_card_state_the_test_error_after_the_last_iteration():
    last = read_metrics(RUN_RECORD)[-1]
    assert last["iteration"] == 64_000
    assert stated_error() == round(100 * (1 - last["val_acc"]), 2)
    with open(os.path.join(MODEL_DIR, "README.md")) as f:
        card = re.findall(r"\*\*Test error: (\d+\.\d\d) %", f.read())
    assert card == [f"{stated_error():.2f}"]


@pytest.mark.skipif(not os.path.isfile(ARCHIVE), reason=f"{ARCHIVE} not found")
def test_its_test_error_on_the_archive_is_the_one_the_readme_states(tmp_path):
    download_cifar("cifar10", str(tmp_path), url=f"file://{ARCHIVE}", md5=ARCHIVE_MD5,
                   progress=False)
    model = Classifier(MODEL_DIR, batch_size=100)
    images, labels = read_test_set(str(tmp_path), model.info)
    assert len(images) == 10_000
    assert error_rate(model, images, labels) == pytest.approx(stated_error(), abs=0.05)
