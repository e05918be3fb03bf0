"""Evaluation protocols: holdout, k-fold and repeated seeds."""
