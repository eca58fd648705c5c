"""Weights & Biases: a W&B run per run folder (its files in ``<run>/wandb/``),
the config as the W&B config, each epoch's metrics at step = epoch, a sweep's
jobs grouped under the sweep's name, the diagnosis in the summary, the tags
and the notes, the run's files saved with it.

Without an API key (WANDB_API_KEY unset and no login in ~/.netrc) it runs
offline, unless WANDB_MODE says otherwise: ``wandb sync <run>/wandb/offline-run-*``
uploads it later. A resumed run continues its W&B run (the same id)."""

import netrc
import os
from urllib.parse import urlparse

from lossbench.tracking.record import TrackedRun, diagnosis_text, end_tags, epoch_metrics, result_metrics, run_files

DEFAULT_PROJECT = "lossbench"
MAX_TAG = 64  # W&B's limit
INIT_TIMEOUT_S = 30


def has_login() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def mode() -> str:
    return os.environ.get("WANDB_MODE") or ("online" if has_login() else "offline")


def _tag(name: str, value: str) -> str:
    return f"{name}={value}"[:MAX_TAG]


class WandbLogger:
    name = "wandb"

    def __init__(self):
        self.run = None

    def start(self, run: TrackedRun, earlier_rows: list[dict]) -> None:
        import wandb

        self.tracked = run
        run_id = run.attempt_id()
        continues = any((run.path / "wandb").glob(f"*-{run_id}"))
        tags = [_tag("job", run.name)] + ([_tag("sweep", run.sweep.name)] if run.sweep else [])
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT, dir=str(run.path), id=run_id,
            resume="allow", name=run.name, group=run.sweep.name if run.sweep else None, tags=tags,
            config=run.config, mode=mode(),
            # the run's own stdout stays as it is; a server that does not answer gives up in seconds
            settings=wandb.Settings(console="off", init_timeout=INIT_TIMEOUT_S),
        )
        if not continues:
            for row in earlier_rows:
                self.log_epoch(row)

    def log_epoch(self, row: dict) -> None:
        self.run.log(epoch_metrics(row), step=int(row["epoch"]))

    def finish(self, summary: dict) -> None:
        run, tracked = self.run, self.tracked
        results = {key: value for key, (value, _) in result_metrics(summary).items()}
        tags = end_tags(summary)
        run.summary.update({**results, "status": tags["lossbench.status"],
                            "diagnosis": tags.get("lossbench.diagnosis"), "run_dir": str(tracked.path)})
        if "lossbench.diagnosis" in tags:
            run.tags = tuple(run.tags or ()) + (_tag("diagnosis", tags["lossbench.diagnosis"]),)
        text = diagnosis_text(summary)
        if text:
            run.notes = text
        for path in run_files(tracked):
            run.save(str(path), base_path=str(tracked.path), policy="now")
        run.finish(exit_code=0 if summary.get("status") == "finished" else 1)
        self.run = None

    def abandon(self) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1)
            self.run = None
