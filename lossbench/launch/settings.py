"""The checks of a launcher's settings, run before a sweep starts any job."""

import inspect
import shutil

from lossbench.errors import UserError
from lossbench.launch.requeue import check_max_requeues
from lossbench.launch.slots import plan_slots, visible_gpus


def check_launcher_settings(launcher: dict, devices: list[str]) -> None:
    """``devices``: the values of trainer.device the jobs are given."""
    target = str(launcher.get("_target_", ""))
    if target.endswith(".LocalGpusLauncher"):
        _check_local_gpus(launcher, devices)
    if target.endswith("SlurmLauncher") and shutil.which("sbatch") is None:
        raise UserError("hydra/launcher=slurm submits the jobs with SLURM's sbatch, which is not on this machine's "
                        "PATH: launch from a cluster's login node, or try the sweep here with hydra/launcher=slurm_local")
    if "max_requeues" in launcher:
        check_max_requeues(launcher["max_requeues"])


def _check_local_gpus(launcher: dict, devices: list[str]) -> None:
    from lossbench.launch.local_gpus import SlotLauncher

    settings = list(inspect.signature(SlotLauncher.__init__).parameters)[1:]
    for key in launcher:
        if key != "_target_" and key not in settings:
            raise UserError(f"hydra.launcher.{key} is not a setting of hydra/launcher=local_gpus: "
                            f"its settings are {', '.join(settings)}")
    gpus = launcher.get("gpus")
    # GPUs named must be on this machine (where it shows any); "all" needs no look
    present = visible_gpus() if isinstance(gpus, (list, tuple)) and gpus else []
    plan_slots(gpus, launcher.get("jobs_per_gpu"), launcher.get("cpu_jobs"), [0], present)
    for device in devices:
        if device.startswith("cuda:") and device != "cuda:0":
            raise UserError(f"trainer.device={device}: under hydra/launcher=local_gpus each job sees only its "
                            f"slot's GPU, as cuda:0; use trainer.device=auto (or cuda), and hydra.launcher.gpus "
                            f"to choose the GPUs")
