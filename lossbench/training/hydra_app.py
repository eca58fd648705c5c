"""The Hydra application behind ``lossbench train``."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lossbench.config_dir import config_dir
from lossbench.errors import UserError
from lossbench.report.diagnosis import Diagnosis
from lossbench.training.overrides import check_command_line
from lossbench.training.run import format_summary_table, run_training


def _train_job(cfg: DictConfig):
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        summary = run_training(cfg, run_dir)
    except UserError as e:
        print(f"lossbench train: error: {e}", file=sys.stderr)
        raise SystemExit(UserError.exit_code) from None
    diagnosis = Diagnosis(**summary["diagnosis"]).sentence()
    print(f"\n{format_summary_table(summary)}\n\ndiagnosis: {diagnosis}\n\nstatus: {summary['status']}    run directory: {run_dir}")
    return summary["best"].get("test_acc")


def train_main(overrides: list[str]) -> None:
    try:
        check_command_line(overrides)
    except UserError as e:
        print(f"lossbench train: error: {e}", file=sys.stderr)
        raise SystemExit(UserError.exit_code) from None
    # Hydra reads its command line from sys.argv; argv[0] names the app in its messages.
    sys.argv = ["lossbench train", *overrides]
    app = hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(_train_job)
    app()
