"""Backbones and heads: dense networks, the classic CNN, keras.applications."""
