"""Evaluating a trained run again: ``lossbench eval`` (evaluate.py)."""
