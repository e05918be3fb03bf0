"""The files of a run directory and the console report at the end of a run."""

import csv
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402

from framework.rundir import write_atomic  # noqa: E402

def write_metrics(run_dir: Path, metrics: dict):
    write_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def write_history(run_dir: Path, history: list[dict]):
    keys = []
    for row in history:
        keys += [k for k in row if k not in keys]
    tmp = run_dir / ".history.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, run_dir / "history.csv")


def plot_curves(run_dir: Path, history: list[dict], stage_starts: list[tuple[int, str]]):
    """Loss and accuracy per epoch, train vs validation, with stage boundaries marked."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        for epoch, name in stage_starts[1:]:
            ax.axvline(epoch - 0.5, color="grey", linestyle="--", linewidth=1)
            ax.text(epoch - 0.4, ax.get_ylim()[1], name, va="top", fontsize=8, color="grey")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "curves.png", dpi=100)
    plt.close(fig)


def write_summary(run_dir: Path, model):
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), expand_nested=True)
    write_atomic(run_dir / "summary.txt", "\n".join(lines) + "\n")


def console_report(run_dir: Path, metrics: dict) -> str:
    """A few lines for the end of a run."""
    test = metrics["test"]
    lines = [
        f"Run dir:   {run_dir}",
        f"Model:     {metrics['model']['name']} ({metrics['model']['params']:,} parameters)",
        f"Data:      {metrics['data']['name']} ({', '.join(metrics['data']['classes'])})",
        f"Epochs:    {metrics['epochs']}",
        f"{metrics['evaluated_on'].capitalize() + ':':<11}loss {test['loss']:.4f}  "
        f"accuracy {test['accuracy']:.4f}  macro F1 {test['macro']['f1']:.4f}  "
        f"({test['samples']} samples)",
        "Wrote:     model.keras, metrics.json, history.csv, curves.png, summary.txt",
    ]
    return "\n".join(lines)
