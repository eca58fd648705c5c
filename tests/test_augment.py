import torch
import torch.nn.functional as F

from lossbench.data import DeviceBatches, Split
from lossbench.data.augment import Normalize, random_crop, random_flip


def _images(n=64, c=3, size=8):
    g = torch.Generator().manual_seed(0)
    # 1..255 so that the zero padding is recognisable
    return torch.randint(1, 256, (n, c, size, size), generator=g, dtype=torch.uint8)


def test_crop_is_a_window_of_the_zero_padded_image():
    images = _images()
    out = random_crop(images, 2, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(images)):
        matches = [
            (dy, dx) for dy in range(5) for dx in range(5) if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert matches, f"image {i} is not a window of its padded original"
        offsets.add(matches[0])
    assert len(offsets) > 10  # offsets really vary across the batch


def test_flip_mirrors_exactly_about_half():
    images = _images(n=400)
    out = random_flip(images, torch.Generator().manual_seed(2))
    flipped = torch.tensor([torch.equal(o, x.flip(2)) for o, x in zip(out, images)])
    kept = torch.tensor([torch.equal(o, x) for o, x in zip(out, images)])
    assert bool((flipped | kept).all())
    assert 150 < int(flipped.sum()) < 250


def test_normalize_values_and_layout():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2).contiguous()
    mean, std = torch.tensor([0.0, 0.2, 0.5]), torch.tensor([1.0, 0.5, 0.25])
    out = Normalize(mean, std, channels_last=True)(images)
    expected = (images.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_shuffled_batches_cover_the_split_once():
    n = 103
    labels = torch.arange(n)
    images = labels.view(n, 1, 1, 1).to(torch.uint8).expand(n, 1, 4, 4).contiguous()
    identity = Normalize(torch.zeros(1), torch.full((1,), 1 / 255))
    batches = DeviceBatches(Split(images, labels), 10, identity, torch.Generator().manual_seed(0), shuffle=True)
    assert len(batches) == 11
    seen = []
    for x, y in batches:
        assert torch.equal(x[:, 0, 0, 0].long(), y)  # images travel with their labels
        seen.append(y)
    seen = torch.cat(seen)
    assert sorted(seen.tolist()) == list(range(n))
    assert not torch.equal(seen, labels)
