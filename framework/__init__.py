"""A plugin-based experiment framework for Keras 3, composed with Hydra.

Importing this package is cheap: TensorFlow is imported only when a run builds data or a model.
"""

import os

# Set before TensorFlow's first import, so users see our output rather than its start-up noise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
