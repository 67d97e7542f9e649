"""train_imagenet.py: the paper's defaults, and one epoch on RecordIO files of JPEG images."""
import json
import os

import numpy as np
import pytest
from PIL import Image

import data
import train_imagenet
from common.cli import UsageError, run_main
from training import rundir
from training.args import check_num_classes


def test_defaults_are_the_papers_recipe():
    args = train_imagenet.parse_args(["--num-layers", "50", "--data-dir", "d",
                                      "--output-dir", "o"])
    assert (args.batch_size, args.lr, args.optimizer, args.mom, args.wd) == \
        (256, 0.1, "sgd", 0.9, 1e-4)
    assert (args.num_epochs, args.lr_step_epochs, args.top_k) == (90, (30, 60), 5)
    assert (args.image_shape, args.num_classes, args.data_nthreads) == ((3, 224, 224), 1000, 4)
    assert args.augmentation == "scale"


@pytest.fixture
def recs(generated_cifar10, tmp_path):
    """train/val RecordIO of 3 classes x 8 generated CIFAR images upscaled to 56x56 JPEGs."""
    images, labels = data.load_cifar(generated_cifar10)
    folder = tmp_path / "images"
    for c in range(3):
        (folder / f"class{c}").mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(labels == c)[:8]):
            picture = Image.fromarray(images[i].transpose(1, 2, 0)).resize((56, 56))
            picture.save(folder / f"class{c}" / f"img{j}.jpg", quality=95)
    for name in ("train", "val"):
        data.pack_imagenet(str(folder), str(tmp_path / name), progress=False)
    return str(tmp_path)


def test_one_epoch_on_records_reports_top_k(recs, tmp_path):
    out = str(tmp_path / "run")
    records = train_imagenet.main(["--data-dir", recs, "--output-dir", out, "--num-layers",
                                   "18", "--image-shape", "3,48,48", "--num-classes", "3",
                                   "--batch-size", "8", "--top-k", "2", "--num-epochs", "1",
                                   "--data-nthreads", "1", "--no-plots"])
    [record] = records
    assert record["iteration"] == 3  # 24 images / 8
    for split in ("train", "val"):
        assert 0 <= record[f"{split}_acc"] <= record[f"{split}_top2_acc"] <= 1
    assert np.isfinite(record["val_loss"])
    assert rundir.read_metrics(out)[0]["val_top2_acc"] == record["val_top2_acc"]
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    assert config["preprocess"]["crop"] == 48 and config["preprocess"]["resize"] == 55
    assert config["classes"] == ["class0", "class1", "class2"]  # the packed folders
    assert rundir.find_checkpoint(out)["epoch"] == 1


def test_scale_augmentation_records_its_pixel_mean_and_resume_is_exact(recs, tmp_path):
    flags = ["--data-dir", recs, "--num-layers", "18", "--image-shape", "3,40,40",
             "--num-classes", "3", "--top-k", "2", "--batch-size", "8", "--data-nthreads", "2",
             "--lr-step-epochs", "2", "--no-plots"]
    whole = train_imagenet.main(flags + ["--output-dir", str(tmp_path / "a"), "--num-epochs", "3"])
    part = str(tmp_path / "b")
    train_imagenet.main(flags + ["--output-dir", part, "--num-epochs", "1"])
    resumed = train_imagenet.main(flags + ["--output-dir", part, "--num-epochs", "3", "--resume"])
    for key in ("train_loss", "val_loss", "val_acc"):
        assert [r[key] for r in resumed] == pytest.approx([r[key] for r in whole], abs=1e-5)
    with open(os.path.join(part, "config.json")) as f:
        pre = json.load(f)["preprocess"]
    mean = np.load(os.path.join(part, pre["mean_image"]))
    assert mean.shape == (3, 40, 40) and pre["std"] == [1.0, 1.0, 1.0]
    assert 0 < mean.mean() < 255 and pre["mean"] == pytest.approx(mean.mean(axis=(1, 2)), abs=1e-3)


def test_benchmark_of_an_imagenet_net(capsys):
    result = train_imagenet.main(["--benchmark", "--num-layers", "18", "--image-shape",
                                  "3,64,64", "--batch-size", "2", "--benchmark-batches", "1"])
    assert result["images_per_sec"] > 0
    assert "ResNet-18" in capsys.readouterr().out


def test_num_classes_below_the_labels_of_the_lists_stops_before_training(recs, tmp_path,
                                                                        capsys):
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_info:
        run_main(train_imagenet.main, ["--data-dir", recs, "--output-dir", out, "--num-layers",
                                       "18", "--image-shape", "3,48,48", "--num-classes", "2",
                                       "--top-k", "0", "--batch-size", "8", "--num-epochs", "1"],
                 prog="train_imagenet.py")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"train_imagenet.py: error: --num-classes 2: the labels of {recs}/train.lst and "
        f"{recs}/val.lst range over 0..2, so the network needs at least 3 classes"]
    assert os.listdir(out) == [".lock"]


def test_labels_of_the_lists(recs, tmp_path):
    from data.imagenet import list_labels
    labels, lists = list_labels(recs)
    assert lists == [os.path.join(recs, "train.lst"), os.path.join(recs, "val.lst")]
    assert sorted(np.bincount(labels)) == [16, 16, 16]  # 8 images of 3 classes, twice
    (tmp_path / "val.lst").write_text("0\t1.000000\tclass1/a.jpg\nbroken line\n")
    with pytest.raises(ValueError, match=r"val\.lst:2: not an im2rec list line"):
        list_labels(recs)
    for name in ("train.lst", "val.lst"):
        os.remove(os.path.join(recs, name))
    assert list_labels(recs) == (None, [])


def test_check_num_classes(caplog):
    labels = np.array([0, 2, 1])
    check_num_classes(3, labels, "x")
    assert not caplog.records
    check_num_classes(5, labels, "x")
    assert caplog.records[0].getMessage() == ("--num-classes 5: the labels of x range over "
                                              "0..2; outputs 3..4 are never a target")
    with pytest.raises(UsageError, match=r"range over -1\.\.2"):
        check_num_classes(3, np.array([-1, 2]), "x")
    with pytest.raises(UsageError, match="x has 10 classes"):
        check_num_classes(5, labels, "x", data_classes=10)
