"""Keras callbacks, each writing inside the run directory."""
