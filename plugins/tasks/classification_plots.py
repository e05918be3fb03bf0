"""The classification report's plots: the confusion matrix and, for images, the misclassified
validation images."""

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402


def plot_confusion_matrix(run_dir: Path, y_true, y_pred, class_names, split: str):
    """Counts of true vs predicted classes, with class names, on one split; a cell without a
    number holds none (the errors stand out, and fewer labels take less time to lay out)."""
    from sklearn.metrics import confusion_matrix

    n = len(class_names)
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(n)))
    size = min(2.5 + 0.6 * n, 16)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({split}, {int(matrix.sum())} samples)")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i, j in zip(*np.nonzero(matrix)):
        count = matrix[i, j]
        ax.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            color="white" if count > threshold else "black",
        )
    fig.tight_layout()
    fig.savefig(run_dir / "confusion_matrix.png", dpi=100)
    plt.close(fig)


def plot_misclassified(
    run_dir: Path, images, y_true, y_pred, class_names, split: str, limit: int = 16
):
    """A grid of a split's misclassified images (raw 0..255) titled with true and predicted
    labels."""
    images = np.clip(np.asarray(images[:limit]), 0, 255).astype(np.uint8)
    if not len(images):
        fig = plt.figure(figsize=(4, 2))
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        fig.suptitle(f"misclassified ({split})")
        fig.savefig(run_dir / "misclassified.png", dpi=100)
        plt.close(fig)
        return
    # One mosaic in one axes: a subplot per image takes seconds to lay out and draw.
    count, height, width, channels = images.shape
    cols = min(4, count)
    rows = -(-count // cols)
    cell_inches = 2.4  # each image is drawn this wide, whatever its pixel size
    pad_x = max(1, width // 8)
    pad_y = max(1, round((width + pad_x) * 0.45 / cell_inches))  # two lines of title
    mosaic = np.full((rows * (height + pad_y), cols * (width + pad_x), channels), 255, np.uint8)
    fig_width = cell_inches * cols
    fig_height = fig_width * mosaic.shape[0] / mosaic.shape[1] + 0.5  # + the figure's title
    fig = plt.figure(figsize=(fig_width, fig_height))
    ax = fig.add_axes((0, 0, 1, 1 - 0.5 / fig_height))
    ax.axis("off")
    for i, (image, t, p) in enumerate(zip(images, y_true, y_pred)):
        top = (i // cols) * (height + pad_y) + pad_y
        left = (i % cols) * (width + pad_x) + pad_x // 2
        mosaic[top : top + height, left : left + width] = image
        ax.text(
            left + width / 2,
            top - 0.5,
            f"true: {class_names[t]}\npred: {class_names[p]}",
            ha="center",
            va="bottom",
            fontsize=9,
            color="red",
        )
    ax.imshow(
        mosaic.squeeze(-1) if channels == 1 else mosaic,
        cmap="gray",
        interpolation="nearest",
        vmin=0,
        vmax=255,
    )
    fig.suptitle(f"misclassified ({split})")
    fig.savefig(run_dir / "misclassified.png", dpi=100)
    plt.close(fig)


def take_examples(x, indices, limit: int = 16):
    """The inputs at ``indices`` (the first ``limit``) from an array or a batched dataset."""
    wanted = sorted(indices)[:limit]
    if not wanted:
        return np.zeros((0,))
    if isinstance(x, np.ndarray):
        return x[wanted]
    found, start = [], 0
    for batch in x:
        batch = np.asarray(batch)
        found += [batch[i - start] for i in wanted if start <= i < start + len(batch)]
        start += len(batch)
        if start > wanted[-1]:
            break
    return np.stack(found)
