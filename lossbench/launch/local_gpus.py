"""The Hydra launcher behind ``hydra/launcher=local_gpus`` (see slots.py)."""

from pathlib import Path

from hydra.plugins.launcher import Launcher
from omegaconf import OmegaConf, open_dict

from lossbench.launch.slots import JOB_FILES, SlotScheduler, cores_of_this_process, plan_slots, visible_gpus, write_job


class SlotLauncher(Launcher):
    def __init__(self, gpus="all", jobs_per_gpu: int = 1, cpu_jobs: int = 2) -> None:
        self.gpus = OmegaConf.to_container(gpus) if OmegaConf.is_config(gpus) else gpus
        self.jobs_per_gpu, self.cpu_jobs = jobs_per_gpu, cpu_jobs  # checked by plan_slots
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides, initial_job_idx: int):
        from hydra.core.singleton import Singleton
        from hydra.core.utils import JobReturn, JobStatus, filter_overrides

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        slots = plan_slots(self.gpus, self.jobs_per_gpu, self.cpu_jobs, cores_of_this_process(), visible_gpus())
        # the resolvers are functions, registered again by the jobs' own imports
        singletons = Singleton.get_state()["instances"]
        jobs = []
        for k, overrides in enumerate(job_overrides):
            number = initial_job_idx + k
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config.hydra.job):
                config.hydra.job.id = str(number)
                config.hydra.job.num = number
            payload = write_job(sweep_dir / JOB_FILES / f"job_{number}.pkl", {
                "hydra_context": self.hydra_context, "task_function": self.task_function,
                "config": config, "singletons": singletons})
            jobs.append((number, payload, " ".join(filter_overrides(overrides))))
        progress = bool(OmegaConf.select(self.config, "trainer.progress", default=True))
        SlotScheduler(slots, sweep_dir, progress).run(jobs)
        for _, payload, _ in jobs:  # the job's output log stays
            payload.unlink(missing_ok=True)
        # what each job trained is in its folder, where the sweep's end reads it
        return [JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED) for overrides in job_overrides]
