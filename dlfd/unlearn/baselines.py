"""Baseline unlearning methods (PAPER.md, "Baselines")."""
