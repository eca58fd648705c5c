"""The Hydra launcher behind ``hydra/launcher=local_gpus`` (see slots.py)."""

import os
import pickle
from pathlib import Path

from hydra.plugins.launcher import Launcher
from omegaconf import OmegaConf, open_dict

from lossbench.launch.slots import JOB_FILES, SlotScheduler, check_slot_settings, plan_slots, visible_gpus, write_job


class SlotLauncher(Launcher):
    def __init__(self, gpus="all", jobs_per_gpu: int = 1, cpu_jobs: int = 2) -> None:
        self.gpus = OmegaConf.to_container(gpus) if OmegaConf.is_config(gpus) else gpus
        self.jobs_per_gpu, self.cpu_jobs = jobs_per_gpu, cpu_jobs
        check_slot_settings(self.gpus, jobs_per_gpu, cpu_jobs)
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides, initial_job_idx: int):
        from hydra.core.singleton import Singleton
        from hydra.core.utils import JobReturn, JobStatus, filter_overrides

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        slots = plan_slots(self.gpus, self.jobs_per_gpu, self.cpu_jobs, cores, visible_gpus())
        jobs = []
        for k, overrides in enumerate(job_overrides):
            number = initial_job_idx + k
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config.hydra.job):
                config.hydra.job.id = str(number)
                config.hydra.job.num = number
            payload = write_job(sweep_dir / JOB_FILES / f"job_{number}.pkl", {
                "hydra_context": self.hydra_context, "task_function": self.task_function,
                "config": config,
                # the resolvers are functions, registered again by the job's own imports
                "singletons": Singleton.get_state()["instances"]})
            jobs.append((number, payload, " ".join(filter_overrides(overrides))))
        progress = bool(OmegaConf.select(self.config, "trainer.progress", default=True))
        SlotScheduler(slots, sweep_dir, progress).run(jobs)
        returns = []
        for (number, payload, _), overrides in zip(jobs, job_overrides):
            ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            # what each job trained is in its folder; the sweep's end reads it from there
            ret.return_value = _read_result(payload.with_suffix(".result"))
            returns.append(ret)
            for done in (payload, payload.with_suffix(".result")):  # the job's output log stays
                done.unlink(missing_ok=True)
        return returns


def _read_result(path: Path):
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, pickle.PickleError, EOFError):
        return None
