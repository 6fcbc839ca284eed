"""Baselines that sit in the same results table as mmembed models (see evaluation.encoders)."""
