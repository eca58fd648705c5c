"""The files of a run directory, written so that a crash at any moment leaves
each of them either as it was or complete: temporary file, fsync, rename."""

import csv
import json
import math
import os
from pathlib import Path

from lossbench.errors import UserError


def replace_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def _finite_or_none(value):
    """JSON has no NaN or infinity: they are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def write_json(path: Path, data: dict) -> None:
    text = json.dumps(_finite_or_none(data), indent=2, default=_jsonable, allow_nan=False) + "\n"
    replace_atomically(path, lambda f: f.write(text.encode()))


def write_text(path: Path, text: str) -> None:
    replace_atomically(path, lambda f: f.write(text.encode()))


def write_csv(path: Path, columns, rows) -> None:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    replace_atomically(path, lambda f: f.write(buffer.getvalue().encode()))


def write_config_record(run_dir: Path, config, overrides, hydra_config=None) -> None:
    """``.hydra/``: the composed config, the command-line overrides and Hydra's
    own settings, as Hydra would write them, but only by the folder's owner."""
    from omegaconf import OmegaConf

    record = Path(run_dir) / ".hydra"
    record.mkdir(exist_ok=True)
    write_text(record / "config.yaml", OmegaConf.to_yaml(config))
    write_text(record / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    if hydra_config is not None:
        write_text(record / "hydra.yaml", OmegaConf.to_yaml(hydra_config))


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def format_value(value) -> str:
    """CSV cells: empty for missing, up to 6 significant digits otherwise."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.6g}"
    return str(value)


class MetricsCSV:
    """metrics.csv, one row per epoch, each row flushed and synced as it is written."""

    def __init__(self, path: Path, columns, append: bool = False):
        self.path = path
        self.columns = list(columns)
        try:
            self.file = open(path, "a" if append else "w", newline="")
            self.writer = csv.writer(self.file, lineterminator="\n")
            if not append:
                self._write(self.columns)
        except OSError as e:
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None

    def _write(self, cells) -> None:
        self.writer.writerow(cells)
        self.file.flush()
        os.fsync(self.file.fileno())

    def append(self, row: dict) -> None:
        try:
            self._write([format_value(row.get(c)) for c in self.columns])
        except OSError as e:
            raise UserError(f"cannot write {self.path}: {e.strerror or e}") from None

    def close(self) -> None:
        self.file.close()
