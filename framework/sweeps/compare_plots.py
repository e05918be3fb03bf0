"""``compare.png`` (every run's objective per epoch, overlaid) and ``hparams.png`` (settings
against the objective, in parallel coordinates) for ``python -m framework.compare``."""

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colors, patheffects, ticker  # noqa: E402

from framework.sweeps.compare import Compared, read_curve, shown_value, varied  # noqa: E402
from framework.sweeps.plot import BEST, OTHERS  # noqa: E402

# The best run's line: drawn last, thick, outlined in black.
HIGHLIGHT = [patheffects.Stroke(linewidth=4.5, foreground="black"), patheffects.Normal()]
# A numeric setting spanning this ratio or more is drawn on a log scale (a learning rate).
LOG_RATIO = 100
# More distinct values than this: a categorical setting's axis names only its first and last.
MAX_TICKS = 12


def plot_curves(runs: list[Compared], path: Path):
    """Draws the objective of each run per epoch (from its history.csv), the best highlighted,
    coloured by the first setting that varies between them.

    Args:
        runs: best first (``collect_runs``); those of the best run's objective are drawn.
        path: the PNG to write.
    """
    plotted = _same_objective(runs)
    curves = [(run, read_curve(run)) for run in plotted]
    curves = [(run, curve) for run, curve in curves if curve]
    fig, ax = plt.subplots(figsize=(9, 5))
    if curves:
        colour, legend = _colours([run for run, _ in curves], fig, ax)
        best = plotted[0] if plotted[0].scored else None
        for run, curve in sorted(curves, key=lambda rc: rc[0] is best):  # the best on top
            ax.plot(
                range(1, len(curve) + 1),
                curve,
                color=colour(run),
                linewidth=2.5 if run is best else 1.2,
                alpha=1.0 if run is best else 0.75,
                linestyle="-" if run.status == "finished" else "--",
                path_effects=HIGHLIGHT if run is best else None,
                marker="o" if len(curve) <= 20 else None,
                markersize=3,
            )
        if legend:
            ax.legend(handles=legend, fontsize=8, loc="best")
        objective = plotted[0].objective
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_ylabel(
            f"{objective.name} ({'lower' if objective.direction == 'min' else 'higher'} is better)"
        )
        ax.grid(alpha=0.3)
        title = f"{len(curves)} runs, {objective.name} per epoch"
        if best is not None:
            title += f"; best (outlined): {best.name}, {shown_value(best)}"
        missing = len(plotted) - len(curves)
        if missing:
            title += f"\n{missing} run(s) without a history.csv (see compare.csv)"
    else:
        ax.set_axis_off()
        title = "no run has a history.csv with its objective (see compare.csv)"
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def plot_hparams(runs: list[Compared], path: Path):
    """Draws each scored run as a line across one axis per setting that varies and a last one
    for the objective (parallel coordinates), coloured by the objective, the best highlighted.

    Args:
        runs: best first (``collect_runs``); the scored ones of the best run's objective are
            drawn.
        path: the PNG to write.
    """
    scored = [run for run in _same_objective(runs) if run.scored]
    keys = varied(scored)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 * (len(keys) + 1) + 1.5), 5))
    if not scored:
        ax.set_axis_off()
        ax.set_title("no run has an objective value (see compare.csv)", fontsize=10)
        _save(fig, path)
        return
    objective = scored[0].objective
    columns = [[run.settings.get(key, "-") for run in scored] for key in keys]
    columns.append([run.value for run in scored])
    axes = [_axis(column) for column in columns]
    values = [run.value for run in scored]
    norm = colors.Normalize(min(values), max(values))
    # Better is brighter, whichever the direction.
    cmap = plt.get_cmap("viridis_r" if objective.direction == "min" else "viridis")
    for i, run in reversed(list(enumerate(scored))):  # the best drawn last, on top
        best = i == 0
        ax.plot(
            range(len(axes)),
            [position[i] for position, _ in axes],
            color=BEST if best else cmap(norm(run.value)),
            linewidth=2.5 if best else 1.2,
            alpha=1.0 if best else 0.7,
            path_effects=HIGHLIGHT if best else None,
            marker="o",
            markersize=3,
        )
    for x, (_, ticks) in enumerate(axes):
        ax.axvline(x, color="grey", linewidth=1)
        for y, label in ticks:
            ax.text(
                x - 0.03,
                y,
                label,
                fontsize=7,
                ha="right",
                va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )
    direction = "lower" if objective.direction == "min" else "higher"
    ax.set_xticks(range(len(axes)), [*keys, f"{objective.name}\n({direction} is better)"])
    ax.set_xlim(-0.5, len(axes) - 0.8)
    ax.set_ylim(-0.08, 1.08)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.colorbar(plt.cm.ScalarMappable(norm, cmap), ax=ax, label=objective.name, pad=0.02)
    title = f"{len(scored)} runs: settings against {objective.name}"
    title += f"; best (orange): {scored[0].name}, {shown_value(scored[0])}"
    if not keys:
        title += "\nno setting varies between them"
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def _same_objective(runs: list[Compared]) -> list[Compared]:
    """The runs ranked by the best run's objective (runs of other tasks rank apart)."""
    name = next((run.objective.name for run in runs if run.objective), None)
    return [run for run in runs if run.objective and run.objective.name == name]


def _colours(runs: list[Compared], fig, ax):
    """A run's line colour, by the first setting that varies between ``runs``; and the legend
    of a categorical setting (a numeric one gets a colour bar)."""
    keys = varied(runs)
    if not keys:
        return (lambda run: BEST if run is runs[0] else OTHERS), []
    key = keys[0]
    values = [run.settings.get(key, "-") for run in runs]
    numbers = _numbers(values)
    if numbers is not None:
        low, high = min(numbers), max(numbers)
        log = low > 0 and high / low >= LOG_RATIO
        norm = (colors.LogNorm if log else colors.Normalize)(low, high)
        cmap = plt.get_cmap("viridis")
        fig.colorbar(plt.cm.ScalarMappable(norm, cmap), ax=ax, label=key, pad=0.02)
        return (lambda run: cmap(norm(float(run.settings.get(key))))), []
    categories = sorted(set(values))
    palette = plt.get_cmap("tab10" if len(categories) <= 10 else "tab20")
    by_value = {value: palette(i % palette.N) for i, value in enumerate(categories)}
    legend = [
        plt.Line2D([], [], color=by_value[value], label=f"{key}={value}")
        for value in categories[:MAX_TICKS]
    ]
    return (lambda run: by_value[run.settings.get(key, "-")]), legend


def _axis(column: list) -> tuple[list[float], list[tuple[float, str]]]:
    """One axis of parallel coordinates: each run's position on it (0..1), and its labels."""
    numbers = _numbers(column)
    if numbers is None:  # categories, evenly spaced, sorted
        categories = sorted(set(column))
        step = 1 / max(len(categories) - 1, 1)
        where = {
            value: i * step if len(categories) > 1 else 0.5 for i, value in enumerate(categories)
        }
        shown = categories if len(categories) <= MAX_TICKS else [categories[0], categories[-1]]
        return [where[value] for value in column], [(where[value], value) for value in shown]
    low, high = min(numbers), max(numbers)
    scale = math.log10 if low > 0 and high / low >= LOG_RATIO else float
    if low == high:
        return [0.5] * len(numbers), [(0.5, f"{low:.4g}")]

    def position(number):
        return (scale(number) - scale(low)) / (scale(high) - scale(low))

    distinct = sorted(set(numbers))
    shown = distinct if len(distinct) <= MAX_TICKS else [low, high]
    return [position(n) for n in numbers], [(position(n), f"{n:.4g}") for n in shown]


def _numbers(values: list) -> list[float] | None:
    """The values as numbers, if they all are."""
    try:
        numbers = [float(value) for value in values]
    except (TypeError, ValueError):
        return None
    return numbers if all(math.isfinite(n) for n in numbers) else None


def _save(fig, path: Path):
    """Writes the figure whole or not at all."""
    fig.tight_layout()
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
