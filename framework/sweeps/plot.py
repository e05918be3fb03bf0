"""``summary.png``: a sweep's objective per job, best first and highlighted."""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402

PLOT = "summary.png"
BEST, OTHERS = "tab:orange", "tab:blue"


def plot_sweep(sweep_dir: Path, jobs: list[dict], finished: list[dict]):
    """Draws the finished jobs' objective, one bar each, best first; the title names the jobs
    without one.

    Args:
        sweep_dir: where ``summary.png`` goes.
        jobs: every job, as ``collect_jobs`` ranks them.
        finished: those of ``jobs`` that finished with an objective value, in the same order.
    """
    if not finished:
        return
    objective = finished[0]["objective"]
    labels = [_label(job) for job in finished]
    values = [job["objective_value"] for job in finished]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * len(finished)))
    bars = ax.barh(range(len(finished)), values, color=OTHERS)
    bars[0].set_color(BEST)
    ax.bar_label(bars, fmt="%.4f", padding=3, fontsize=8)
    ax.set_yticks(range(len(finished)), labels, fontsize=8)
    ax.invert_yaxis()  # best on top
    ax.set_xlabel(
        f"{objective} ({'lower' if finished[0]['direction'] == 'min' else 'higher'} is better)"
    )
    ax.set_xlim(0, max(values) * 1.15 or 1)
    title = f"Sweep: {len(jobs)} jobs, best {objective}: job {finished[0]['job']}"
    others = [str(job["job"]) for job in jobs if job not in finished]
    if others:
        title += f"\nno {objective} (see summary.csv): job {', '.join(others)}"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    tmp = sweep_dir / f".{PLOT}.{os.getpid()}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, sweep_dir / PLOT)


def _label(job: dict) -> str:
    varied = job["varied"] or "(no override)"
    return f"{job['job']}: {varied if len(varied) <= 60 else varied[:57] + '...'}"
