"""The validation split: held out of the training set, stratified, disjoint
from training (checked by the images' content), reproducible per val_seed, and
the test set untouched."""

import numpy as np
import pytest
import torch

from helpers.training import compose_train
from lossbench.data import load_dataset
from lossbench.data.validation_split import validation_counts, validation_indices


def _rows(split) -> set[bytes]:
    return {image.numpy().tobytes() for image in split.images}


@pytest.mark.parametrize("dataset", ["digits", "digits_lt"])
def test_the_split_is_disjoint_stratified_and_leaves_the_test_set(dataset):
    whole = load_dataset(compose_train(f"dataset={dataset}", "dataset.val_fraction=0").dataset, None, torch.device("cpu"))
    split = load_dataset(compose_train(f"dataset={dataset}").dataset, None, torch.device("cpu"))
    assert _rows(split.train).isdisjoint(_rows(split.val))  # no image in both, by content
    assert _rows(split.train) | _rows(split.val) == _rows(whole.train)  # nothing lost
    assert torch.equal(split.test.images, whole.test.images) and torch.equal(split.test.labels, whole.test.labels)
    held = torch.bincount(split.val.labels, minlength=10).tolist()
    assert held == [max(1, round(0.1 * n)) for n in whole.class_counts]  # a tenth of every class
    assert split.class_counts == [n - v for n, v in zip(whole.class_counts, held)]
    # mean and std from the training images only
    x = split.train.images.float() / 255
    torch.testing.assert_close(split.mean, x.mean(dim=(0, 2, 3)))


def test_the_split_is_reproducible_per_seed_and_moves_with_it():
    def val_images(seed):
        return _rows(load_dataset(compose_train("dataset=digits", f"dataset.val_seed={seed}").dataset, None,
                                  torch.device("cpu")).val)

    assert val_images(0) == val_images(0)
    assert val_images(0) != val_images(1)
    # the training seed does not move it: runs of different seeds validate on the same images
    a = load_dataset(compose_train("dataset=digits", "seed=0").dataset, None, torch.device("cpu")).val
    b = load_dataset(compose_train("dataset=digits", "seed=5").dataset, None, torch.device("cpu")).val
    assert torch.equal(a.images, b.images)


def test_every_class_keeps_a_training_image_and_gives_one_where_it_can():
    labels = np.repeat(np.arange(5), [1, 2, 3, 10, 40])
    assert validation_counts([1, 2, 3, 10, 40], 0.1) == [0, 1, 1, 1, 4]
    assert validation_counts([1, 2, 3, 10, 40], 0.9) == [0, 1, 2, 9, 36]
    train, val = validation_indices(labels, 5, 0.9, seed=0)
    assert np.bincount(labels[train], minlength=5).min() >= 1
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))


def test_no_split_when_the_fraction_is_zero():
    data = load_dataset(compose_train("dataset=digits", "dataset.val_fraction=0").dataset, None, torch.device("cpu"))
    assert data.val is None and len(data.train) == 1437
