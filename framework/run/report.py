"""The files of a run directory and the console report at the end of a run."""

import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402

from framework.run.rundir import shown, write_atomic, write_csv_atomic  # noqa: E402


def write_metrics(run_dir: Path, metrics: dict):
    write_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def write_history(run_dir: Path, history: list[dict]):
    keys = []
    for row in history:
        keys += [k for k in row if k not in keys]
    write_csv_atomic(
        run_dir / "history.csv", keys, ([row.get(k, "") for k in keys] for row in history)
    )


def plot_curves(
    run_dir: Path, history: list[dict], stage_starts: list[tuple[int, str]], metric: str
):
    """The loss and one metric per epoch, train vs validation, with stage boundaries marked."""
    epochs = [row["epoch"] for row in history]
    # Margins set, not computed (tight_layout's extra pass over the text took 0.06 of this
    # plot's 0.17 s on 2 CPU cores): room for tick labels as long as "-0.000150", and stage
    # names kept inside the axes (test_report).
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"wspace": 0.25})
    fig.subplots_adjust(left=0.085, right=0.99, bottom=0.12, top=0.92)
    middle = (epochs[0] + epochs[-1]) / 2 if epochs else 0
    for ax, metric in zip(axes, ("loss", metric)):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        for epoch, name in stage_starts[1:]:
            ax.axvline(epoch - 0.5, color="grey", linestyle="--", linewidth=1)
            # On the side of the line with more room: a late stage's name reads leftwards.
            late = epoch > middle
            ax.text(
                epoch - (0.6 if late else 0.4),
                ax.get_ylim()[1],
                name,
                va="top",
                ha="right" if late else "left",
                fontsize=8,
                color="grey",
            )
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(run_dir / "curves.png", dpi=100)
    plt.close(fig)


def write_summary(run_dir: Path, model):
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), expand_nested=True)
    write_atomic(run_dir / "summary.txt", "\n".join(lines) + "\n")


def console_report(run_dir: Path, metrics: dict, task=None) -> str:
    """A few lines for the end of a run; its task (None: the one that writes runs of its
    ``data.task``) writes the lines of scores."""
    from framework.parts.tasks import task_of_run

    task = task or task_of_run(metrics)
    lines = [
        f"Run dir:   {shown(run_dir)}",
        f"Model:     {metrics['model']['name']} ({metrics['model']['params']:,} parameters)",
        f"Data:      {metrics['data']['name']} ({', '.join(task.target_names(metrics['data']))})",
        f"Epochs:    {metrics['epochs']}",
        *task.score_lines(metrics),
        "Wrote:     "
        + ", ".join(
            sorted(p.name for p in run_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        ),
    ]
    return "\n".join(lines)


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


def plot_misclassified(run_dir: Path, images, y_true, y_pred, class_names, limit: int = 16):
    """A grid of misclassified images (raw 0..255) titled with true and predicted labels."""
    images = np.clip(np.asarray(images[:limit]), 0, 255).astype(np.uint8)
    if not len(images):
        fig = plt.figure(figsize=(4, 2))
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        fig.suptitle("misclassified (validation)")
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
    fig.suptitle("misclassified (validation)")
    fig.savefig(run_dir / "misclassified.png", dpi=100)
    plt.close(fig)
