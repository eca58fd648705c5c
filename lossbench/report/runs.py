"""Finding runs on disk and reading what they wrote."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from lossbench.errors import UserError


@dataclass
class Run:
    path: Path
    metrics: pd.DataFrame
    summary: dict = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.summary.get("status", "unknown")


def find_run_dirs(paths: list[str]) -> list[Path]:
    """Every directory under ``paths`` that holds a metrics.csv, in path order."""
    found = []
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise UserError(f"{root} does not exist: give a run directory, a multirun directory or a folder of runs")
        found += sorted({p.parent for p in root.rglob("metrics.csv")})
    if not found:
        raise UserError(f"no runs under {', '.join(paths)}: a run directory holds metrics.csv (written by lossbench train)")
    return found


def load_run(path: Path) -> Run:
    try:
        metrics = pd.read_csv(path / "metrics.csv")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        metrics = pd.DataFrame()
    summary, overrides = {}, []
    try:
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        pass
    try:
        overrides = yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        pass
    return Run(path, metrics, summary, overrides)
