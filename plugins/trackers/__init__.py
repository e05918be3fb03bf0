"""Run trackers: none, MLflow, TensorBoard, CSV."""
