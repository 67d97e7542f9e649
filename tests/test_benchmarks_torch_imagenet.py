"""benchmarks/torch_imagenet.py, the PyTorch peer of the ImageNet run, on generated JPEG
class folders: its records and run folder, exact resume, MXNet's weight decay and
momentum, the range of the training scale, the colour noise, the 10-crop testing and the
one-line errors. Skipped where torch or torchvision does not import."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks import torch_imagenet as peer
from common.cli import run_main
from training import rundir

if peer.IMPORT_ERROR is not None:
    pytest.skip(f"PyTorch or torchvision does not import here ({peer.IMPORT_ERROR})",
                allow_module_level=True)

import torch  # noqa: E402

SIZE = 32
CLASSES = 6  # top-5 needs at least 5
KEYS = {"epoch", "iteration", "lr", "train_loss", "train_acc", "train_top5_acc", "val_loss",
        "val_acc", "val_top5_acc", "epoch_seconds", "samples_per_sec"}


@pytest.fixture(scope="module", autouse=True)
def keep_torch_threads():
    """main sets torch's thread count for the whole process: put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """train/ (6 classes x 4 images) and val/ (6 x 2) of small JPEGs of distinct colours,
    one of them greyscale, and a (3, 32, 32) mean image."""
    root = tmp_path_factory.mktemp("folders")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for c in range(CLASSES):
            folder = root / split / f"n{c:02d}"
            folder.mkdir(parents=True)
            colour = np.array([(c * 40) % 256, 255 - c * 40, (c * 90) % 256], float)
            for i in range(count):
                pixels = np.clip(colour + rng.normal(0, 20, (40, 48, 3)), 0, 255)
                image = Image.fromarray(pixels.astype(np.uint8))
                image = image.convert("L") if (split, c, i) == ("train", 0, 0) else image
                image.save(folder / f"{i}.JPEG", quality=90)
    np.save(root / "mean.npy", rng.uniform(90, 130, (3, SIZE, SIZE)).astype(np.float32))
    return root


def argv(folders, out, *extra):
    return ["--train", str(folders / "train"), "--val", str(folders / "val"),
            "--mean-image", str(folders / "mean.npy"), "--output-dir", str(out),
            "--image-size", str(SIZE), "--batch-size", "4", "--lr", "0.025",
            "--lr-step-epochs", "1", "--threads", "1", "--disp-batches", "2", *extra]


@pytest.fixture(scope="module")
def uninterrupted(folders, tmp_path_factory):
    """Two epochs in one go (the lr divided after the first): (run folder, records)."""
    out = tmp_path_factory.mktemp("run") / "torch"
    return out, peer.main(argv(folders, out, "--epochs", "2", "--workers", "0"))


def without_timings(record):
    return {k: v for k, v in record.items() if k not in peer.TIMINGS}


def test_records_config_and_final_errors(uninterrupted, folders):
    out, records = uninterrupted
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["iteration"] for r in records] == [6, 12]  # 24 images in batches of 4
    assert [r["lr"] for r in records] == pytest.approx([0.025, 0.0025])
    for r in records:
        assert set(r) == KEYS
        assert all(0 <= r[k] <= 1 for k in KEYS if k.endswith("_acc"))
        assert r["val_top5_acc"] >= r["val_acc"] and r["samples_per_sec"] > 0
    assert rundir.read_metrics(str(out)) == records
    run = rundir.read_run(str(out))
    assert run.evaluated == "validation" and run.batches_per_epoch == 6
    assert run.classes == tuple(f"n{c:02d}" for c in range(CLASSES))
    assert run.flags["framework"] == "pytorch" and run.flags["torch_version"]
    assert run.preprocess.resize == round(SIZE * 256 / 224) and run.cpu
    assert np.array_equal(np.load(out / peer.MEAN_IMAGE), np.load(folders / "mean.npy"))
    final = json.loads((out / peer.FINAL).read_text())
    assert (final["epoch"], final["iteration"], final["images"]) == (2, 12, 12)
    # the centre crop of the 10-crop pass is the epoch's evaluation
    assert final["single_crop"]["top1_error"] == pytest.approx(100 * (1 - records[-1]["val_acc"]))
    assert final["single_crop"]["top5_error"] == \
        pytest.approx(100 * (1 - records[-1]["val_top5_acc"]))
    assert 0 <= final["ten_crop"]["top1_error"] <= 100


def test_resume_after_an_epoch_equals_the_uninterrupted_run(uninterrupted, folders, tmp_path):
    # the first epoch with a loader process, the second resumed without: the same numbers
    out = tmp_path / "torch"
    first = peer.main(argv(folders, out, "--epochs", "1", "--workers", "1"))
    records = peer.main(argv(folders, out, "--epochs", "2", "--workers", "0", "--resume"))
    assert [r["epoch"] for r in records] == [1, 2] and records[0] == first[0]
    assert rundir.read_metrics(str(out)) == records
    for got, want in zip(records, uninterrupted[1], strict=True):
        got, want = without_timings(got), without_timings(want)
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    final = json.loads((out / peer.FINAL).read_text())
    want = json.loads((uninterrupted[0] / peer.FINAL).read_text())
    assert final["ten_crop"] == pytest.approx(want["ten_crop"])


def test_plots_draws_the_run(uninterrupted, tmp_path):
    from plots.curves import plot_runs, results_table
    paths = plot_runs([str(uninterrupted[0])], str(tmp_path / "curves"))
    assert all(os.path.getsize(p) > 0 for p in paths)
    assert "| torch | 2 |" in results_table([str(uninterrupted[0])])


def test_weight_decay_and_momentum_as_mxnet_applies_them():
    args = peer.parse_args(["--train", "t", "--val", "v", "--mean-image", "m",
                            "--output-dir", "o"])
    model, optimizer = peer.build(args, 10)
    decayed, free = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    # MXNet's ResNet-18: 21 *_weight and 20 *_gamma decayed, 20 *_beta and fc_bias not
    assert (len(decayed["params"]), decayed["weight_decay"]) == (41, 1e-4)
    assert (len(free["params"]), free["weight_decay"]) == (21, 0.0)
    assert all(names[id(p)].endswith(".bias") for p in free["params"])
    # MXNet's sgd_mom_update: v = m v - lr (g + wd w), w += v, across a change of lr
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=1e-4)
    want, v = w.detach().clone(), torch.zeros(2)
    for t, g in enumerate(torch.tensor([[0.5, 0.1], [-0.3, 0.2], [0.2, 0.4], [0.1, -0.1]])):
        lr = 0.1 if t < 2 else 0.01
        peer.set_lr(optimizer, lr)
        w.grad = g.clone()
        optimizer.step()
        v = 0.9 * v - lr * (g + 1e-4 * want)
        want = want + v
        np.testing.assert_allclose(w.detach().numpy(), want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("size", [32, 128, 224])
def test_training_shorter_side_spans_256_to_480_scaled(size):
    rng = np.random.default_rng(1)
    lengths = np.array([peer.short_side_length(rng, size) for _ in range(20000)])
    low = round(256 * size / 224)  # ImageRecordIter's resize, then a factor in [1, 480/256]
    high = low * 480 / 256
    assert abs(low - 256 * size / 224) <= 0.5 and abs(high - 480 * size / 224) <= 0.5 * 480 / 256
    assert lengths.min() >= low and lengths.max() <= high
    span = high - low
    assert lengths.min() < low + 0.01 * span and lengths.max() > high - 0.01 * span
    counts, _ = np.histogram(lengths, bins=10, range=(low, high))
    assert counts.min() > 0.8 * len(lengths) / 10  # uniform
    # the resize gives that shorter side, truncated to whole pixels, the other in proportion
    length = lengths[0]
    assert peer.scaled_shape(224, 300, length, size) == (int(length), int(300 * length / 224))


def test_colour_noise_has_alexnets_covariance():
    rng = np.random.default_rng(2)
    offsets = np.stack([peer.pca_offset(rng).numpy() for _ in range(20000)])
    vec, val = np.asarray(peer.PCA_EIGVEC), np.asarray(peer.PCA_EIGVAL)
    want = vec @ np.diag((peer.PCA_NOISE * val) ** 2) @ vec.T
    np.testing.assert_allclose(np.cov(offsets.T), want, rtol=0.05, atol=0.05)
    # added to whole pixel values, truncated, clipped; one offset for the whole image
    image = torch.full((3, 40, 48), 128.0)
    out = peer.train_transform(image, SIZE, torch.zeros(3, SIZE, SIZE), rng)
    assert out.shape == (3, SIZE, SIZE)
    for channel in out:
        assert torch.all(channel == channel[0, 0]) and channel[0, 0] == channel[0, 0].round()
    assert torch.all((out - 128).abs() < 20)


def test_ten_crop_probabilities_average_the_ten_crops(folders):
    torch.manual_seed(0)
    model = peer.torchvision.models.resnet18(num_classes=CLASSES).eval()
    mean = torch.from_numpy(np.load(folders / "mean.npy"))
    samples, _ = peer.list_images(str(folders / "val"))
    crops, _ = peer.EvalImages(samples, SIZE, mean, ten_crop=True)[0]
    with torch.no_grad():
        centre, probs = peer.ten_crop_probabilities(model, crops[None])
        image = peer.eval_image(peer.decode(samples[0][0]), SIZE)
        height, width = image.shape[1:]
        assert min(height, width) == round(SIZE * 256 / 224)
        s, cy, cx = SIZE, (height - SIZE) // 2, (width - SIZE) // 2
        by_hand = [image[:, :s, :s], image[:, :s, width - s:], image[:, height - s:, :s],
                   image[:, height - s:, width - s:], image[:, cy:cy + s, cx:cx + s]]
        by_hand += [c.flip(2) for c in by_hand]
        each = [torch.softmax(model((c - mean)[None]), 1)[0] for c in by_hand]
        single = torch.softmax(model(peer.EvalImages(samples, SIZE, mean)[0][0][None]), 1)
    np.testing.assert_allclose(probs[0].numpy(), torch.stack(each).mean(0).numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(centre.numpy(), single.numpy(), rtol=1e-5, atol=1e-6)


def test_constants_are_the_mxnet_pipelines():
    from data import imagenet
    assert peer.SHORT_SIDES == imagenet.SHORT_SIDES
    assert peer.RESIZE_RATIO == imagenet.RESIZE_RATIO
    assert peer.IMAGE_EXTS == imagenet.IMAGE_EXTS
    params = imagenet.scale_augmentation(128)
    assert round(256 * 128 / 224) == params["resize"]
    assert params["pca_noise"] == peer.PCA_NOISE


def fail(args, capsys):
    """The one-line error of torch_imagenet.py run with ``args``."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(peer.main, args, prog="torch_imagenet.py")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("torch_imagenet.py: error: ")
    return err[0]


def test_bad_input_ends_in_one_line(folders, tmp_path, capsys, uninterrupted):
    out = tmp_path / "out"
    good = argv(folders, out, "--epochs", "1")

    def with_flag(flag, value):
        args = list(good)
        args[args.index(flag) + 1] = value
        return args
    assert "nowhere: no such folder" in fail(with_flag("--train", str(tmp_path / "nowhere")),
                                             capsys)
    np.save(tmp_path / "small.npy", np.zeros((3, 16, 16), np.float32))
    assert "expected (3, 32, 32)" in fail(with_flag("--mean-image", str(tmp_path / "small.npy")),
                                          capsys)
    (tmp_path / "text.npy").write_text("not an array")
    assert "not a .npy array" in fail(with_flag("--mean-image", str(tmp_path / "text.npy")),
                                      capsys)
    assert "other class folders" in fail(with_flag("--val", str(folders)), capsys)
    assert "fewer than one batch" in fail(with_flag("--batch-size", "100"), capsys)
    assert "--lr-step-epochs" in fail(with_flag("--lr-step-epochs", "3,x"), capsys)
    mxnet_run = tmp_path / "mxnet"
    mxnet_run.mkdir()
    (mxnet_run / rundir.CONFIG).write_text('{"num_layers": 18}')
    assert "holds another run" in fail(with_flag("--output-dir", str(mxnet_run)), capsys)
    assert "already holds a checkpoint" in fail(
        with_flag("--output-dir", str(uninterrupted[0])), capsys)
