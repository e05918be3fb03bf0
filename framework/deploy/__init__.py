"""A finished run put to use: its files read back, predictions of new images and CSV rows, exports
for deployment."""
