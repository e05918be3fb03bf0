"""The plots of a run directory."""

import matplotlib.image
import numpy as np
import pytest

from framework.report import plot_misclassified


@pytest.mark.parametrize("shape", [(5, 32, 32, 3), (16, 28, 28, 1), (3, 16, 64, 3), (2, 4, 4, 3)])
def test_misclassified_grid_shows_every_image(tmp_path, shape):
    rgb = shape[-1] == 3
    images = np.zeros(shape, "float32")
    if rgb:
        images[..., 1] = 255  # pure green
    else:
        images[...] = 128  # mid grey
    plot_misclassified(tmp_path, images, [0] * len(images), [1] * len(images), ["a", "b"])
    png = matplotlib.image.imread(tmp_path / "misclassified.png")[..., :3]
    colour = [0, 1, 0] if rgb else [128 / 255] * 3
    drawn = np.all(np.isclose(png, colour, atol=0.01), axis=-1).sum()
    # Each image is drawn 2.4 inches wide at 100 dpi: about 240 x 240 * height / width pixels.
    height, width = shape[1:3]
    cell = 240 * width / (width + max(1, width // 8))  # less the gap between images
    assert drawn == pytest.approx(len(images) * cell * cell * height / width, rel=0.1)


def test_misclassified_grid_without_images(tmp_path):
    plot_misclassified(tmp_path, np.zeros((0,)), [], [], ["a", "b"])
    assert matplotlib.image.imread(tmp_path / "misclassified.png").size
