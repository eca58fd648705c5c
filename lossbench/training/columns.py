"""The columns of metrics.csv, in order (metrics.py computes them)."""

METRIC_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "grad_norm_mean",
    "grad_norm_p90",
    "grad_norm_max",
    "update_ratio",
    "val_loss",
    "val_nll",
    "val_acc",
    "val_balanced_acc",
    "val_ece",
    "test_loss",
    "test_nll",
    "test_acc",
    "test_balanced_acc",
    "test_head_acc",
    "test_medium_acc",
    "test_tail_acc",
    "test_ece",
    "epoch_time_s",
    "images_per_s",
    "eval_time_s",
    "nonfinite_steps",
)
# the columns that time the epoch: the only ones two runs of one config on one machine differ in
TIME_COLUMNS = ("epoch_time_s", "images_per_s", "eval_time_s")
