"""``python -m framework.card RUN``: writes a finished run's model card, RUN/model_card.md, again.

The card (data, model, training, scores, protocol, machine and libraries, and the command that
runs it again) is rendered from the run dir's own files only: metrics.json, .hydra/config.yaml
and .hydra/overrides.yaml, history.csv, and a search's best_overrides.yaml. A run writes its card
as it finishes; this command writes the card of a run from before cards, or one deleted, and
rewrites an existing one.
"""

import argparse
from pathlib import Path

from framework.cli.messages import one_line_usage, plain_text, report_errors
from framework.cli.process_exit import run_and_exit
from framework.errors import UserError
from framework.run.card import CARD, write_card
from framework.run.record import read_record
from framework.run.rundir import FAILED, METRICS, shown


def main(argv=None):
    parser = one_line_usage(
        argparse.ArgumentParser(
            prog="python -m framework.card",
            description=plain_text(__doc__),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    parser.add_argument("run", type=Path, metavar="RUN", help="a finished run's directory")
    args = parser.parse_args(argv)
    with report_errors():
        run_dir = args.run
        if not run_dir.is_dir():
            raise UserError(f"RUN={run_dir} is not a directory; give a finished run's directory")
        record = read_record(run_dir)
        if record is None:
            why = f"no {METRICS}"
            if (run_dir / FAILED).is_file():
                why = "it failed: see its FAILED"
            elif (run_dir / "multirun.yaml").is_file():
                why = "a sweep's directory: each of its jobs' directories has its card"
            raise UserError(
                f"RUN={run_dir} is not a finished run ({why}); give a finished run's directory"
            )
        write_card(run_dir, record)
        print(f"Wrote:     {shown(run_dir / CARD)}")


if __name__ == "__main__":
    run_and_exit(main)
