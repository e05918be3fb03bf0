"""``python -m framework.compare DIR... [--output DIR]``: runs side by side.

DIR is a sweep's directory (its jobs, also those that failed or did not finish), a search run's
(its trials, from trials.csv), or a finished run's; give several to compare them together. Writes
compare.png (each run's objective per epoch, overlaid: the best outlined, the lines coloured by
the first setting that varies), hparams.png (the settings that vary against the objective, one
line per run) and compare.csv (one row per run, best first, a column per setting that varies),
and prints the table. Runs are ranked by their objective (trainer.objective, validation only),
as the sweep's summary ranks them. Only the run records are read, no model: hundreds of runs
compare in seconds.

The files go into --output: by default into DIR where one DIR is given (beside a sweep's
summary.csv, a search's trials.csv), into the current folder where several are. Existing ones
are replaced only with --overwrite.
"""

import argparse
from pathlib import Path

from framework.cli.messages import one_line_usage, plain_text, report_errors
from framework.cli.process_exit import run_and_exit
from framework.errors import UserError
from framework.run.rundir import shown
from framework.sweeps.compare import OUTPUTS, collect_runs, format_table, write_table


def main(argv=None):
    parser = one_line_usage(
        argparse.ArgumentParser(
            prog="python -m framework.compare",
            description=plain_text(__doc__),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    parser.add_argument(
        "dirs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="a sweep's directory, a search run's, or finished runs'",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="the folder to write into (default: DIR where one is given, else the current one)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing compare.png, hparams.png, compare.csv",
    )
    args = parser.parse_args(argv)
    with report_errors():
        runs = collect_runs(args.dirs)
        output = args.output or (args.dirs[0] if len(args.dirs) == 1 else Path("."))
        if output.exists() and not output.is_dir():
            raise UserError(f"--output must be a folder; {output} is a file")
        taken = [output / name for name in OUTPUTS if (output / name).exists()]
        if taken and not args.overwrite:
            raise UserError(f"{taken[0]} exists; choose another --output or pass --overwrite")
        from framework.sweeps.compare_plots import plot_curves, plot_hparams  # matplotlib

        output.mkdir(parents=True, exist_ok=True)
        curves, hparams, table = (output / name for name in OUTPUTS)
        write_table(runs, table)
        plot_curves(runs, curves)
        plot_hparams(runs, hparams)
        print(format_table(runs))
        print(f"Wrote:     {shown(curves)}, {hparams.name}, {table.name}")


if __name__ == "__main__":
    run_and_exit(main)
