"""Launching a sweep's jobs: over one machine's GPUs or cores, and on SLURM
with requeueing after preemption. Hydra finds the launchers themselves in
``plugin_path/hydra_plugins/lossbench_launchers``."""
