"""The files of a run directory and the console report at the end of a run."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402

from framework.run.rundir import HISTORY, shown, write_atomic, write_csv_atomic  # noqa: E402


def write_history(run_dir: Path, history: list[dict]):
    keys = []
    for row in history:
        keys += [k for k in row if k not in keys]
    write_csv_atomic(run_dir / HISTORY, keys, ([row.get(k, "") for k in keys] for row in history))


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


def _protocol_lines(metrics: dict) -> list[str]:
    """The console line of a protocol that trained several models: the objective's mean and
    std over them, and the model kept."""
    protocol = metrics.get("protocol")
    if protocol is None:
        return []
    objective = metrics["objective"]
    return [
        f"Protocol:  {protocol['name']}, {len(protocol['rounds'])} models: {objective['name']} "
        f"{objective['value']:.4f} ± {objective['std']:.4f} (mean ± std), kept {protocol['kept']}"
    ]


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
        *_protocol_lines(metrics),
        *task.score_lines(metrics),
        "Wrote:     "
        + ", ".join(
            sorted(p.name for p in run_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        ),
    ]
    return "\n".join(lines)
