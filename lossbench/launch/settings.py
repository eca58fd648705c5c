"""The checks of a launcher's settings, run before a sweep starts any job."""

from lossbench.launch.requeue import check_max_requeues
from lossbench.launch.slots import check_slot_settings


def check_launcher_settings(launcher: dict) -> None:
    if str(launcher.get("_target_", "")).endswith(".LocalGpusLauncher"):
        check_slot_settings(launcher.get("gpus"), launcher.get("jobs_per_gpu"), launcher.get("cpu_jobs"))
    if "max_requeues" in launcher:
        check_max_requeues(launcher["max_requeues"])
