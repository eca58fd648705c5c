"""A run's folder: the one owner of its file names and of how each file is
read and written (atomically, see run_files). Training, resume, sweeps,
searches and the report all go through it."""

import csv
import json
import math
from pathlib import Path

import yaml

from lossbench.errors import UserError
from lossbench.training.run_files import MetricsCSV, replace_atomically, write_csv, write_json, write_text


def _torch():
    """torch, for the checkpoint and logits files only: a command's checks and a
    sweep's planning read run folders before anything needs torch."""
    import torch

    return torch


class RunDir:
    METRICS = "metrics.csv"
    SUMMARY = "summary.json"
    PER_CLASS = "per_class.csv"
    # the training images the run kept: index into the training files, label, train or val
    TRAINING_IMAGES = "training_images.csv"
    CALIBRATION = "calibration.csv"
    CONFIG = "resolved_config.yaml"  # what ran, interpolations resolved
    CHECKPOINT = "last.pt"
    BEST = "best.pt"  # the model and the loss of the selected epoch (best_checkpoint.py)
    # the validation and test logits of the selected and the final epochs, for post-hoc steps
    LOGITS = {"selected": "logits_selected.pt", "final": "logits_final.pt"}
    # what a run writes (beside .hydra/ and its lock): an earlier attempt's are moved aside together
    FILES = (METRICS, SUMMARY, PER_CLASS, TRAINING_IMAGES, CALIBRATION, CONFIG, CHECKPOINT, BEST, *LOGITS.values())

    def __init__(self, path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # summary.json: the run's status, final and best metrics, diagnosis

    def summary(self) -> dict | None:
        """None when the run has none yet, or it cannot be read (a run killed before writing it)."""
        try:
            summary = json.loads((self / self.SUMMARY).read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def status(self) -> str | None:
        return (self.summary() or {}).get("status")

    def finished(self) -> bool:
        return self.status() == "finished"

    def write_summary(self, summary: dict) -> None:
        write_json(self / self.SUMMARY, summary)

    def record_failure(self, message: str) -> None:
        """A run that could not train says so, for the sweep's list and the report."""
        self.write_summary({**(self.summary() or {}), "status": "failed", "error": message})

    # resolved_config.yaml

    def config(self) -> dict | None:
        """What ran; a run older than resolved_config.yaml falls back to Hydra's record."""
        for path in (self / self.CONFIG, self / ".hydra" / "config.yaml"):
            try:
                config = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(config, dict):
                return config
        return None

    def write_config(self, cfg) -> None:
        from omegaconf import OmegaConf

        write_text(self / self.CONFIG, OmegaConf.to_yaml(cfg, resolve=True))

    def overrides(self) -> list[str] | None:
        """The command-line overrides that made the run, as Hydra records them."""
        try:
            overrides = yaml.safe_load((self / ".hydra" / "overrides.yaml").read_text())
        except (OSError, yaml.YAMLError):
            return None
        return [str(o) for o in overrides] if isinstance(overrides, list) else None

    # metrics.csv: one row per completed epoch

    def holds_run(self) -> bool:
        return (self / self.METRICS).exists()

    def refuse_existing_run(self) -> None:
        if self.holds_run():
            raise UserError(f"{self.path} already holds a run ({self.METRICS}): resume it with "
                            f"trainer.resume={self.path}, or choose another output directory")

    def metrics_writer(self, columns, append: bool) -> MetricsCSV:
        return MetricsCSV(self / self.METRICS, columns, append=append)

    def truncate_metrics(self, epochs: int, columns) -> list[dict]:
        """Keep the header and the rows of the first ``epochs`` epochs (a row cut
        short by a kill goes too); return those rows, as numbers. A file
        written by a version with other ``columns`` is rewritten with these
        (a column it lacks left empty), so that the rows to come fit it."""
        path = self / self.METRICS
        with open(path, newline="") as f:
            lines = f.read().split("\n")
        header = lines[0]
        body = [line for line in lines[1:] if line.count(",") == header.count(",")]
        kept = [line for line in body if line.split(",", 1)[0].isdigit() and int(line.split(",", 1)[0]) <= epochs]
        rows = list(csv.DictReader([header, *kept]))
        if header.split(",") == list(columns):
            write_text(path, "\n".join([header, *kept]) + "\n")
        else:
            write_csv(path, columns, [{c: row.get(c, "") for c in columns} for row in rows])
        return [{k: (float(v) if v not in ("", "nan") else (math.nan if v == "nan" else None)) for k, v in row.items()}
                for row in rows]

    def write_training_images(self, kept, labels, held_out) -> None:
        """Every kept training image in the order kept: its index into the training
        files, its label, and whether it trains or was held out for validation."""
        held = set(held_out.tolist())
        write_csv(self / self.TRAINING_IMAGES, ("index", "label", "split"),
                  [{"index": i, "label": y, "split": "val" if i in held else "train"}
                   for i, y in zip(kept.tolist(), labels.tolist())])

    def write_per_class(self, columns, rows) -> None:
        write_csv(self / self.PER_CLASS, columns, rows)

    def write_calibration(self, columns, rows) -> None:
        write_csv(self / self.CALIBRATION, columns, rows)

    # last.pt: everything needed to continue exactly where the run stopped

    def has_checkpoint(self) -> bool:
        return (self / self.CHECKPOINT).is_file()

    def save_checkpoint(self, **state) -> None:
        replace_atomically(self / self.CHECKPOINT, lambda f: _torch().save(state, f))

    def load_checkpoint(self) -> dict:
        path = self / self.CHECKPOINT
        try:
            return _torch().load(path, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise UserError(f"{path} does not exist: the run has no completed epoch to resume from") from None
        except Exception as e:  # a truncated or foreign file
            raise UserError(f"{path} cannot be read ({type(e).__name__}: {e}): the run cannot be resumed") from None

    # best.pt: {"epoch", "model", "loss", "selection", "data", "config"}

    def save_best(self, content: dict) -> None:
        replace_atomically(self / self.BEST, lambda f: _torch().save(content, f))

    def load_best(self) -> dict:
        """best.pt as saved; torch.load's errors where it is absent or cannot be read."""
        return _torch().load(self / self.BEST, map_location="cpu", weights_only=True)

    # logits_<selected|final>.pt: {"epoch": int, "<split>_logits": float16 (N, K), "<split>_labels": int64 (N,)}

    def save_logits(self, which: str, epoch: int, splits: dict) -> None:
        """``splits``: split name -> (logits, labels), as tensors on any device."""
        torch, content = _torch(), {"epoch": epoch}
        for split, (logits, labels) in splits.items():
            content[f"{split}_logits"] = logits.detach().to("cpu", torch.float16)
            content[f"{split}_labels"] = labels.detach().to("cpu", torch.int64)
        replace_atomically(self / self.LOGITS[which], lambda f: _torch().save(content, f))

    def logits(self, which: str) -> dict | None:
        """The saved logits as float64 NumPy arrays and labels, or None where the run saved none."""
        try:
            content = _torch().load(self / self.LOGITS[which], map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError):
            return None
        return {k: (v.double().numpy() if k.endswith("_logits") else v.numpy() if hasattr(v, "numpy") else v)
                for k, v in content.items()}

    def previous_files(self) -> list[Path]:
        return [self / name for name in self.FILES if (self / name).exists()]
