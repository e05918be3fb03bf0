"""Tasks: classification, regression and multilabel, with their metrics and plots."""
