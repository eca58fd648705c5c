"""The checks of a launcher's settings, run before a sweep starts any job."""

from lossbench.errors import UserError
from lossbench.launch.requeue import check_max_requeues
from lossbench.launch.slots import check_slot_settings


def check_launcher_settings(launcher: dict, devices: list[str]) -> None:
    """``devices``: the values of trainer.device the jobs are given."""
    if str(launcher.get("_target_", "")).endswith(".LocalGpusLauncher"):
        check_slot_settings(launcher.get("gpus"), launcher.get("jobs_per_gpu"), launcher.get("cpu_jobs"))
        for device in devices:
            if device.startswith("cuda:") and device != "cuda:0":
                raise UserError(f"trainer.device={device}: under hydra/launcher=local_gpus each job sees only its "
                                f"slot's GPU, as cuda:0; use trainer.device=auto (or cuda), and hydra.launcher.gpus "
                                f"to choose the GPUs")
    if "max_requeues" in launcher:
        check_max_requeues(launcher["max_requeues"])
