"""Is this training healthy? A label for a run's curves, its evidence and advice."""

from lossbench.diagnosis.evidence import RunFacts
from lossbench.diagnosis.judge import ADVICE, MIN_EPOCHS, Diagnosis, diagnose

__all__ = ["ADVICE", "MIN_EPOCHS", "Diagnosis", "RunFacts", "diagnose"]
