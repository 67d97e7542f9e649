"""ImageNet pipeline end to end: CIFAR images upscaled to JPEG, packed, read back."""
import io
import os

import numpy as np
import pytest
from PIL import Image

import data
from common.mx import mx
from data.imagenet import RGB_MEAN, RGB_STD

CLASSES, PER_CLASS, SIZE = 3, 4, (80, 64)  # 12 images of 80x64 (width x height)


@pytest.fixture(scope="module")
def image_folder(generated_cifar10, tmp_path_factory):
    """class0..class2 with four generated CIFAR-10 images each, upscaled and saved as JPEG."""
    images, labels = data.load_batch(os.path.join(generated_cifar10, "data_batch_1"))
    root = tmp_path_factory.mktemp("images")
    for c in range(CLASSES):
        (root / f"class{c}").mkdir()
        for j, i in enumerate(np.flatnonzero(labels == c)[:PER_CLASS]):
            picture = Image.fromarray(images[i].transpose(1, 2, 0)).resize(SIZE, Image.BICUBIC)
            picture.save(root / f"class{c}" / f"img{j}.jpg", quality=95)
    (root / "class1" / "notes.txt").write_text("not an image")
    return str(root)


@pytest.fixture(scope="module")
def recs(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("rec")
    data.pack_imagenet(image_folder, str(out / "train"), progress=False)
    data.pack_imagenet(image_folder, str(out / "val"), shuffle=False, progress=False)
    return str(out)


def read_records(prefix):
    record = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    out = [mx.recordio.unpack(record.read_idx(k)) for k in sorted(record.keys)]
    record.close()
    return out


def test_pack_writes_im2rec_list_and_records(image_folder, recs):
    lines = [line.split("\t") for line in open(os.path.join(recs, "train.lst")).read().splitlines()]
    assert len(lines) == CLASSES * PER_CLASS
    assert [int(line[0]) for line in lines] == list(range(len(lines)))
    paths = [line[2] for line in lines]
    assert sorted(paths) == sorted(f"class{c}/img{j}.jpg" for c in range(CLASSES)
                                   for j in range(PER_CLASS))
    assert paths != sorted(paths)  # shuffled
    records = read_records(os.path.join(recs, "train"))
    for (index, label, path), (header, payload) in zip(lines, records):
        assert float(label) == header.label == int(path[5])
        assert header.id == int(index)
        with open(os.path.join(image_folder, path), "rb") as f:
            assert payload == f.read()  # stored as is, like im2rec --pass-through


def test_pack_resize_reencodes(image_folder, tmp_path):
    _, rec, _ = data.pack_imagenet(image_folder, str(tmp_path / "small"), resize=32,
                                   progress=False).paths
    assert os.path.basename(rec) == "small.rec"
    header, payload = read_records(str(tmp_path / "small"))[0]
    assert Image.open(io.BytesIO(payload)).size == (40, 32)
    assert sorted(os.listdir(tmp_path)) == ["small.idx", "small.lst", "small.rec"]


def reference_crop(path, crop=224, short=256):
    """Shorter side to 256, centre 224x224, in pixels (C, H, W): evaluation's crop, with PIL."""
    picture = Image.open(path).convert("RGB")
    w, h = picture.size
    picture = picture.resize((round(w * short / h), short), Image.BILINEAR)
    left, top = (picture.width - crop) // 2, (picture.height - crop) // 2
    return np.asarray(picture.crop((left, top, left + crop, top + crop)), np.float32).transpose(2, 0, 1)


def reference_val(path, crop=224, short=256):
    """``reference_crop`` normalised with the ImageNet mean and std."""
    x = reference_crop(path, crop, short)
    return (x - np.reshape(RGB_MEAN, (3, 1, 1))) / np.reshape(RGB_STD, (3, 1, 1))


def test_validation_is_resize_and_centre_crop(image_folder, recs):
    _, val = data.get_imagenet_iters(recs, batch_size=5, data_nthreads=2,
                                     augmentation="inception")
    passes = []
    for _ in range(2):
        batches = list(val)
        val.reset()
        passes.append(np.concatenate([b.data[0].asnumpy() for b in batches]))
        assert [b.pad for b in batches] == [0, 0, 3]
    np.testing.assert_array_equal(passes[0], passes[1])
    x = passes[0]
    assert x.shape == (15, 3, 224, 224)
    np.testing.assert_array_equal(x[12:], x[:3])
    lines = open(os.path.join(recs, "val.lst")).read().splitlines()
    for got, line in zip(x[:12], lines):
        want = reference_val(os.path.join(image_folder, line.split("\t")[2]))
        assert np.abs(got - want).mean() < 0.02       # decoders and resamplers differ a bit
        assert np.abs(got - want[::-1]).mean() > 0.1  # but the channels are RGB, not BGR


def test_pixel_mean_is_the_mean_of_the_evaluation_crops(image_folder, recs):
    mean = data.pixel_mean(os.path.join(recs, "val.rec"), (3, 56, 56), data_nthreads=2,
                           batch_size=5)
    lines = open(os.path.join(recs, "val.lst")).read().splitlines()
    want = np.mean([reference_crop(os.path.join(image_folder, line.split("\t")[2]), 56, 64)
                    for line in lines], axis=0)
    assert mean.shape == (3, 56, 56) and mean.dtype == np.float32
    assert np.abs(mean - want).mean() < 2.0        # decoders and resamplers differ a bit
    assert np.abs(mean - want[::-1]).mean() > 5.0  # RGB, not BGR


def test_scale_augmentation_subtracts_the_pixel_mean(recs):
    mean = data.pixel_mean(os.path.join(recs, "train.rec"), (3, 56, 56), data_nthreads=2)
    with pytest.raises(ValueError, match="needs the per-pixel mean of the 3x56x56 crops"):
        data.get_imagenet_iters(recs, batch_size=4, image_shape=(3, 56, 56))
    train, val = data.get_imagenet_iters(recs, batch_size=4, data_nthreads=2,
                                         image_shape=(3, 56, 56), mean_image=mean)
    x = np.concatenate([b.data[0].asnumpy()[:4 - b.pad] for b in val])
    assert np.abs(x.mean(axis=0)).max() < 1.0  # the mean of the crops is the mean image
    epochs = []
    for epoch in (0, 1, 0):
        data.start_epoch(train, epoch)
        epochs.append(np.concatenate([b.data[0].asnumpy() for b in train]))
    assert np.array_equal(epochs[0], epochs[2]) and not np.array_equal(epochs[0], epochs[1])
    assert np.isfinite(epochs[0]).all() and 20 < epochs[0].std() < 120  # pixels, not unit std


def test_training_augmentation(recs):
    train, _ = data.get_imagenet_iters(recs, batch_size=4, data_nthreads=2, seed=1,
                                       augmentation="inception")
    assert train.provide_data[0].shape == (4, 3, 224, 224)
    epochs = []
    for _ in range(2):
        batches = list(train)
        train.reset()
        assert len(batches) == len(train) == 3
        epochs.append(np.concatenate([b.data[0].asnumpy() for b in batches]))
        labels = np.concatenate([b.label[0].asnumpy() for b in batches])
        assert set(labels) <= {0.0, 1.0, 2.0}
    assert np.isfinite(epochs[0]).all() and not np.array_equal(epochs[0], epochs[1])
    assert -1.5 < epochs[0].mean() < 1.5 and 0.3 < epochs[0].std() < 2.0


def test_float16_and_parts(recs):
    seen = []
    for part in range(2):
        train, val = data.get_imagenet_iters(recs, batch_size=4, data_nthreads=1,
                                             num_parts=2, part_index=part, dtype="float16",
                                             image_shape=(3, 64, 64), augmentation="inception")
        assert len(list(train)) == 1   # 12 images, 2 parts, 4 per batch: 6 // 4
        for b in val:
            assert b.data[0].dtype == np.float16 and b.data[0].shape == (4, 3, 64, 64)
            x = b.data[0].asnumpy()[:4 - b.pad]
            seen += [tuple(np.round(img[:, 32, :8].ravel(), 2)) for img in x]
    assert len(seen) == CLASSES * PER_CLASS and len(set(seen)) == len(seen)


def test_errors(image_folder, recs, tmp_path):
    with pytest.raises(FileNotFoundError, match="train.rec: no such file"):
        data.get_imagenet_iters(str(tmp_path), batch_size=4)
    with pytest.raises(ValueError, match="image_shape must be channels,height,width"):
        data.get_imagenet_iters(recs, batch_size=4, image_shape=(224, 224))
    with pytest.raises(ValueError, match="image_shape must be channels,height,width"):
        data.get_imagenet_iters(recs, batch_size=4, image_shape="3,224,224")
    with pytest.raises(ValueError, match="too few images for one batch"):
        data.get_imagenet_iters(recs, batch_size=64, augmentation="inception")
    with pytest.raises(ValueError, match="no class sub-folders"):
        data.pack_imagenet(str(tmp_path), str(tmp_path / "x"))
    bad = tmp_path / "bad" / "class0"
    bad.mkdir(parents=True)
    (bad / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="none of its 1 image files could be read"):
        data.pack_imagenet(str(tmp_path / "bad"), str(tmp_path / "bad"), progress=False)
    assert not any(name.startswith("bad.") for name in os.listdir(tmp_path))
    with pytest.raises(ValueError, match="unknown augmentation 'alexnet'; valid: scale, inception"):
        data.get_imagenet_iters(recs, batch_size=4, augmentation="alexnet")


def test_pack_converts_what_the_decoder_may_misread_and_skips_what_is_no_image(tmp_path):
    folder = tmp_path / "images" / "class0"
    folder.mkdir(parents=True)
    rows, cols = np.mgrid[0:40, 0:50]
    rgb = Image.fromarray(np.stack([rows * 6, cols * 5, 255 - cols * 4], -1).astype(np.uint8))
    rgb.save(folder / "rgb.jpg")
    rgb.convert("L").save(folder / "grey.jpg")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.convert("RGBA").save(folder / "alpha.png")
    rgb.save(folder / "rgb.png")
    (folder / "truncated.jpg").write_bytes((folder / "rgb.jpg").read_bytes()[:300])
    (folder / "empty.JPEG").write_bytes(b"")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    packed = data.pack_imagenet(str(tmp_path / "images"), str(tmp_path / "out"),
                                shuffle=False, progress=False)
    assert packed.images == 5 and packed.converted == {"JPEG CMYK": 1, "PNG RGBA": 1}
    assert packed.unreadable == ["class0/empty.JPEG", "class0/truncated.jpg"]
    assert packed.other_files == ["class0/.DS_Store"]
    summary = packed.summary()
    assert "skipped 2 unreadable: class0/empty.JPEG, class0/truncated.jpg" in summary
    assert "1 JPEG CMYK, 1 PNG RGBA" in summary and "class0/.DS_Store" in summary
    lines = open(tmp_path / "out.lst").read().splitlines()
    assert [line.split("\t")[2] for line in lines] == \
        ["class0/alpha.png", "class0/cmyk.jpg", "class0/grey.jpg", "class0/rgb.jpg", "class0/rgb.png"]
    stored = {line.split("\t")[2]: payload for line, (_, payload)
              in zip(lines, read_records(str(tmp_path / "out")))}
    for name in ("grey.jpg", "rgb.jpg", "rgb.png"):  # stored as they are
        assert stored[f"class0/{name}"] == (folder / name).read_bytes()
    for name in ("alpha.png", "cmyk.jpg"):  # RGB JPEGs now
        with Image.open(io.BytesIO(stored[f"class0/{name}"])) as img:
            assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (50, 40))
    x = mx.image.imdecode(stored["class0/cmyk.jpg"]).asnumpy().astype(float)
    assert np.abs(x - np.asarray(rgb, float)).mean() < 4  # the colours survive


def test_command_line(image_folder, tmp_path, capsys):
    from common.cli import run_main
    from data.__main__ import main
    run_main(main, ["pack-imagenet", image_folder, str(tmp_path / "val"), "--no-shuffle",
                    "--resize", "40"])
    assert "val.rec" in capsys.readouterr().out
    lines = open(tmp_path / "val.lst").read().splitlines()
    assert [line.split("\t")[2] for line in lines] == sorted(line.split("\t")[2] for line in lines)
    with pytest.raises(SystemExit) as code:
        run_main(main, ["pack-imagenet", str(tmp_path / "nowhere"), str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.count("\n") == 1 and "nowhere: no such folder" in err


def test_real_photographs_of_every_shape_pack_and_read_back(imagenet_photos, tmp_path):
    """Photographs of the folder (every 25th, and two greyscale ones where there are),
    one class folder each, packed resized to a shorter side of 146 and read back through
    the scale augmentation at 128 pixels."""
    import glob
    import shutil
    photos = sorted(glob.glob(os.path.join(imagenet_photos, "*.JPEG")))
    grey = [p for p in photos if Image.open(p).mode == "L"][:2]
    photos = sorted(set(photos[::25] + grey))
    for i, path in enumerate(photos):
        (tmp_path / "images" / f"c{i:03d}").mkdir(parents=True)
        shutil.copy(path, tmp_path / "images" / f"c{i:03d}")
    packed = data.pack_imagenet(str(tmp_path / "images"), str(tmp_path / "train"), resize=146,
                                progress=False)
    assert packed.images == len(photos) and not packed.unreadable
    assert packed.converted.get("JPEG L", 0) == len(grey)  # greyscale became RGB
    for header, payload in read_records(str(tmp_path / "train")):
        with Image.open(io.BytesIO(payload)) as img:
            assert img.mode == "RGB" and min(img.size) == 146
    shutil.copy(tmp_path / "train.rec", tmp_path / "val.rec")
    shutil.copy(tmp_path / "train.idx", tmp_path / "val.idx")
    mean = data.pixel_mean(str(tmp_path / "train.rec"), (3, 128, 128), data_nthreads=2)
    train, val = data.get_imagenet_iters(str(tmp_path), batch_size=8, data_nthreads=2,
                                         image_shape=(3, 128, 128), mean_image=mean)
    data.start_epoch(train, 0)
    x = np.concatenate([b.data[0].asnumpy() for b in train])
    assert x.shape == (len(photos) // 8 * 8, 3, 128, 128) and np.isfinite(x).all()
