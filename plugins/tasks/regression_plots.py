"""The regression report's plots: predicted vs true, and the residuals' histogram."""

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402

# Targets drawn side by side, at most.
MAX_PANELS = 4


def plot_predicted_vs_true(run_dir: Path, true, predicted, names, split: str):
    """One scatter per target: predicted against true, with the diagonal of perfect predictions."""
    fig, axes = _panels(len(names))
    for i, (ax, name) in enumerate(zip(axes, names)):
        t, p = true[:, i], predicted[:, i]
        ax.scatter(t, p, s=12, alpha=0.7)
        low, high = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.grid(alpha=0.3)
    fig.suptitle(f"predicted vs true ({split}, {len(true)} samples)")
    fig.tight_layout()
    fig.savefig(run_dir / "predicted_vs_true.png", dpi=100)
    plt.close(fig)


def plot_residuals(run_dir: Path, true, predicted, names, split: str):
    """One histogram per target of predicted minus true, in the target's units."""
    fig, axes = _panels(len(names))
    for i, (ax, name) in enumerate(zip(axes, names)):
        ax.hist(predicted[:, i] - true[:, i], bins=min(30, max(5, len(true) // 5)))
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel(f"predicted - true {name}")
        ax.set_ylabel("samples")
        ax.grid(alpha=0.3)
    fig.suptitle(f"residuals ({split}, {len(true)} samples)")
    fig.tight_layout()
    fig.savefig(run_dir / "residuals.png", dpi=100)
    plt.close(fig)


def _panels(count: int):
    count = min(count, MAX_PANELS)
    fig, axes = plt.subplots(1, count, figsize=(4.5 * count, 4.2), squeeze=False)
    return fig, list(np.ravel(axes))
