"""lossbench: train image classifiers with different losses, compare them and
diagnose training health."""

__version__ = "0.1.0"
