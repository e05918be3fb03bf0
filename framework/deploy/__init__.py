"""A finished run put to use: its model read back, new images and CSV rows as its inputs."""
