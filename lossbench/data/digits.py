"""scikit-learn's bundled copy of the UCI optical handwritten digits: 1,797
8x8 grey images with 17 intensity levels, 10 classes. No download."""

import numpy as np


def load_digits_split(split_seed: int, test_fraction: float = 0.2):
    """(train_images, train_labels, test_images, test_labels): a stratified split,
    images as (N, 1, 8, 8) uint8 scaled from 0..16 to 0..255."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=split_seed
    )
    return train_x, train_y, test_x, test_y
