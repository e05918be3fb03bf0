"""Datasets: bundled tabular data, CSV files, image folders, generated shapes, digits."""
