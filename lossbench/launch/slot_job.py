"""One job of a ``local_gpus`` sweep, in the process its slot started:
``python -m lossbench.launch.slot_job JOB.pkl``."""

import os
import pickle
import sys
from pathlib import Path


def main(path: Path) -> int:
    cpus = os.environ.get("LOSSBENCH_SLOT_CPUS")
    if cpus and hasattr(os, "sched_setaffinity"):
        # the slot's share of the cores, so that concurrent jobs do not crowd the same ones
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobStatus, run_job, setup_globals
    from omegaconf.basecontainer import BaseContainer

    import lossbench.training.sweep  # noqa: F401  registers the job folders' resolver

    with open(path, "rb") as f:
        job = pickle.load(f)
    setup_globals()
    Singleton.set_state({"instances": job["singletons"], "omegaconf_resolvers": BaseContainer._resolvers})
    ret = run_job(hydra_context=job["hydra_context"], task_function=job["task_function"], config=job["config"],
                  job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    if ret.status != JobStatus.COMPLETED:
        print(f"lossbench train: job {job['config'].hydra.job.num} failed: {ret._return_value!r}", file=sys.stderr)
        return 1
    # the job's test accuracy; None: it did not finish, and its folder says why
    return 0 if ret.return_value is not None else 1


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
