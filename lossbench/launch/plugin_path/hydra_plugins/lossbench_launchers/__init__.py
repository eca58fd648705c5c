"""lossbench's Hydra launchers. Hydra loads launchers only from the
hydra_plugins namespace, so they are named here; their code is in
lossbench.launch."""

from lossbench.launch.local_gpus import SlotLauncher


class LocalGpusLauncher(SlotLauncher):
    """hydra/launcher=local_gpus: one machine's GPUs (or cores), a job per free slot."""


try:
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
except ImportError:  # the slurm extra is not installed: these launchers are not offered
    pass
else:
    from dataclasses import dataclass

    from hydra.core.config_store import ConfigStore

    from lossbench.launch.requeue import RequeueOnStop

    class RequeueingSlurmLauncher(RequeueOnStop, SlurmLauncher):
        """hydra/launcher=slurm: a SLURM array whose preempted or timed-out jobs are requeued and resume."""

    class RequeueingLocalLauncher(RequeueOnStop, LocalLauncher):
        """hydra/launcher=slurm_local: the same jobs and requeueing as local processes (submitit's local executor)."""

    @dataclass
    class RequeueingSlurmConf(SlurmQueueConf):
        _target_: str = "hydra_plugins.lossbench_launchers.RequeueingSlurmLauncher"
        # requeues of one job after a stop signal (preemption or time limit); then it stays interrupted
        max_requeues: int = 3

    @dataclass
    class RequeueingLocalConf(LocalQueueConf):
        _target_: str = "hydra_plugins.lossbench_launchers.RequeueingLocalLauncher"
        # submitit's local executor starts a job at most 6 times
        max_requeues: int = 3

    # the schemas configs/hydra/launcher/slurm.yaml and slurm_local.yaml start from
    ConfigStore.instance().store(group="hydra/launcher", name="requeueing_slurm", node=RequeueingSlurmConf,
                                 provider="lossbench")
    ConfigStore.instance().store(group="hydra/launcher", name="requeueing_local", node=RequeueingLocalConf,
                                 provider="lossbench")
