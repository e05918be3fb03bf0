"""Regularizers: dropout, L1/L2 penalties, image augmentation."""
