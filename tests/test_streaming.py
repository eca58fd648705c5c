"""Data too large for the device: streamed from host memory or the decoded-image
cache by DataLoader workers, with the same order and augmentations as the
on-device path, and the same training."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.training import compose_train, read_rows
from lossbench.data import DeviceBatches, HostSplit, Split, StreamedBatches, batches_of, load_dataset
from lossbench.data.augment import Normalize
from lossbench.data.dataset import channel_stats
from lossbench.data.placement import choose_placement, loader_workers
from lossbench.errors import UserError
from lossbench.training.run import run_training
from lossbench.training.validate import validate_config
from lossbench.training.columns import TIME_COLUMNS

CPU = torch.device("cpu")


def _digits(*overrides, free_memory=None):
    cfg = compose_train(*overrides)
    validate_config(cfg)
    return load_dataset(cfg.dataset, None, CPU, free_memory=free_memory)


def test_auto_holds_what_fits_in_half_the_free_memory_and_streams_the_rest():
    # digits: 1,797 images of 64 bytes = 115,008 bytes in all splits, and
    # 3 x 1,295 x 64 = 248,640 for an epoch's copies of the training split
    needed = 115_008 + 248_640
    held = _digits(free_memory=2 * needed)
    assert held.placement.on_device and isinstance(held.train, Split) and isinstance(held.test, Split)
    assert held.placement.reason == "held on cpu: 0.4 MB, within half of the 0.7 MB free"
    streamed = _digits(free_memory=2 * needed - 1)
    assert not streamed.placement.on_device and streamed.placement.name == "streamed"
    assert isinstance(streamed.train, HostSplit) and isinstance(streamed.val, HostSplit)
    assert streamed.placement.reason == ("streamed to cpu by DataLoader workers: 0.4 MB is more than half of the "
                                         "0.7 MB free")
    # the same images and labels either way, nothing copied to the host split
    for split in ("train", "val", "test"):
        a, b = getattr(held, split), getattr(streamed, split)
        assert torch.equal(a.images, torch.from_numpy(b.source[b.rows])) and torch.equal(a.labels, b.labels)
    assert held.class_counts == streamed.class_counts and torch.equal(held.mean, streamed.mean)
    # the setting overrides the measurement both ways
    assert _digits("dataset.on_device=true", free_memory=1).placement.on_device
    assert not _digits("dataset.on_device=false", free_memory=10**12).placement.on_device


def test_placement_reasons_and_workers(monkeypatch):
    assert choose_placement("auto", 3 * 10**9, CPU, free=4 * 10**9).reason == (
        "streamed to cpu by DataLoader workers: 3.00 GB is more than half of the 4.00 GB free")
    assert choose_placement(False, 10, CPU).reason.endswith("as dataset.on_device=false asks")
    assert loader_workers(3) == 3
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert loader_workers("auto") == 8
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert loader_workers("auto") == 1


def test_channel_stats_in_chunks_match_the_whole(monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(37, 3, 5, 5), dtype=np.uint8)
    rows = np.sort(rng.choice(37, 20, replace=False))
    x = torch.from_numpy(images[rows]).double() / 255
    expected_mean, expected_std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    monkeypatch.setattr("lossbench.data.dataset.STATS_CHUNK_PIXELS", 3 * 25)  # three images per chunk
    mean, std = channel_stats(images, rows)
    torch.testing.assert_close(mean.double(), expected_mean, rtol=1e-6, atol=0)
    torch.testing.assert_close(std.double(), expected_std, rtol=1e-6, atol=0)


@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_batches_draw_the_device_paths_batches(workers):
    held, streamed = _digits(free_memory=10**12), _digits(free_memory=1)
    normalize = Normalize(held.mean, held.std)
    weights = (1.0 / torch.tensor(held.class_counts, dtype=torch.float32))[held.train.labels]
    for options in ({"shuffle": True}, {"sample_weights": weights}):
        device = DeviceBatches(held.train, 100, normalize, torch.Generator().manual_seed(3), **options)
        stream = batches_of(streamed.train, 100, normalize, workers, generator=torch.Generator().manual_seed(3),
                            **options)
        assert isinstance(stream, StreamedBatches) and len(stream) == len(device) == 13
        for epoch in range(2):
            pairs = list(zip(device, stream, strict=True))
            for (x, y), (sx, sy) in pairs:
                assert torch.equal(x, sx) and torch.equal(y, sy)
    # evaluation keeps the split's order exactly
    device_eval = DeviceBatches(held.test, 64, normalize)
    stream_eval = batches_of(streamed.test, 64, normalize, workers)
    for (x, y), (sx, sy) in zip(device_eval, stream_eval, strict=True):
        assert torch.equal(x, sx) and torch.equal(y, sy)


def test_streamed_augmentation_is_a_crop_and_flip_of_the_batch():
    streamed = _digits(free_memory=1)
    normalize = Normalize(torch.zeros(1), torch.full((1,), 1 / 255))  # the identity on uint8 values
    batches = batches_of(streamed.train, 50, normalize, 0, generator=torch.Generator().manual_seed(0),
                         shuffle=True, crop_padding=1, flip=True, views=2)
    images, labels = next(iter(batches))
    assert images.shape == (100, 1, 8, 8) and torch.equal(labels[:50], labels[50:])
    originals = torch.from_numpy(streamed.train.source[streamed.train.rows]).float()
    padded = torch.nn.functional.pad(originals, (1, 1, 1, 1))
    # every crop offset and mirroring of every training image: (18, N, 64)
    crops = torch.stack([(padded.flip(3) if f else padded)[:, :, dy:dy + 8, dx:dx + 8].flatten(1)
                         for f in (0, 1) for dy in range(3) for dx in range(3)])
    offsets = [(f, dy, dx) for f in (0, 1) for dy in range(3) for dx in range(3)]
    shifted, flipped = 0, 0
    for image in images:
        matches = (crops == image.flatten()).all(dim=2).any(dim=1)  # per offset: does some image give it
        candidates = [offsets[i] for i in matches.nonzero().flatten().tolist()]
        assert candidates, "a streamed image is not a crop of any training image"
        shifted += all((dy, dx) != (1, 1) for _, dy, dx in candidates)
        flipped += all(f for f, _, _ in candidates)
    assert shifted > 20 and flipped > 10  # offsets and flips both drawn (blank digits rows make some ambiguous)


def _train(tmp_path, name, *overrides):
    cfg = compose_train("trainer.epochs=3", "dataset.augment.crop_padding=0", "trainer.deterministic=true", *overrides)
    run_dir = tmp_path / name
    run_training(cfg, run_dir)
    return read_rows(run_dir), json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
def test_a_streamed_run_trains_as_the_on_device_run(tmp_path, caplog):
    held_rows, held = _train(tmp_path, "held", "dataset.on_device=true")
    with caplog.at_level(logging.INFO, logger="lossbench"):
        streamed_rows, streamed = _train(tmp_path, "streamed", "dataset.on_device=false", "dataset.loader_workers=1")
    assert held["data_placement"] == "on_device" and streamed["data_placement"] == "streamed"
    assert "data: streamed to cpu by DataLoader workers, as dataset.on_device=false asks" in caplog.messages
    # the same batches in the same order: the same run, to the last digit written
    for a, b in zip(held_rows, streamed_rows, strict=True):
        assert ({k: v for k, v in a.items() if k not in TIME_COLUMNS}
                == {k: v for k, v in b.items() if k not in TIME_COLUMNS})
    assert held["selected_epoch"] == streamed["selected_epoch"]


def _write_folder(root, n=30, size=10):
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("test", n // 3)):
        for c, name in enumerate(("ant", "bee", "cow")):
            for i in range(count):
                base = np.zeros((size, size, 3), np.uint8)
                base[..., c] = 150
                noise = rng.integers(0, 100, size=(size, size, 3), dtype=np.uint8)
                path = root / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(base + noise).save(path)
    return root


@pytest.mark.slow
def test_own_images_stream_from_the_cache_file(tmp_path):
    root = _write_folder(tmp_path / "images")
    overrides = ("dataset=image_folder", f"dataset.root={root}", "dataset.image_size=8", "model=small_cnn",
                 "trainer=quick", "trainer.epochs=2", "trainer.batch_size=16", f"paths.data_dir={tmp_path / 'data'}",
                 "dataset.on_device=false", "dataset.loader_workers=1")
    cfg = compose_train(*overrides)
    data = load_dataset(cfg.dataset, tmp_path / "data", CPU)
    # the training split reads the cache's .npy through a memmap: a worker reopens it by name
    assert isinstance(data.train.source, np.memmap)
    assert str(data.train.source.filename).endswith("train_images.npy")
    assert data.class_names == ["ant", "bee", "cow"] and len(data.train) + len(data.val) == 90
    rows, summary = _train(tmp_path, "own", *overrides)
    assert summary["data_placement"] == "streamed" and summary["class_names"] == ["ant", "bee", "cow"]
    assert len(rows) == 2 and float(rows[-1]["test_acc"]) > 0.6  # one bright channel per class


@pytest.mark.parametrize("override, message", [
    ("dataset.on_device=maybe", "dataset.on_device='maybe' is invalid: valid values are auto, true, false"),
    ("dataset.loader_workers=-1", "dataset.loader_workers=-1 is invalid: it must be in [0, 64] "
                                  "(0 reads in the training process), or auto"),
])
def test_bad_placement_settings_are_refused(override, message):
    with pytest.raises(UserError) as refused:
        validate_config(compose_train(override))
    assert str(refused.value) == message
