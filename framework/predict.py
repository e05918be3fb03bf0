"""``python -m framework.predict MODEL PATH [--top N]``: predict with a trained model.

MODEL is a finished run's directory or a ``.tflite`` file written by ``framework.export`` (its
class names are read from the ``.json`` file next to it). PATH is one image (prints the
prediction) or a folder (every image below it; writes a CSV of path, class and confidence, and
prints a summary). A model holds its own preprocessing, so images are only decoded and resized
here, exactly as in training. For a run on a CSV file (dataset=csv), PATH is a CSV file of new
rows with the same feature columns: they are encoded and scaled as the run's training data was,
each prediction is printed in the task's own terms (a class, a number in the target's units,
labels), and the rows are written with their predictions.

A model.keras is loaded in Keras's safe mode: one that holds Python code (a Lambda layer), which
would run as it loads, is refused unless --unsafe is given.
"""

import argparse
from pathlib import Path

from framework.cli.messages import one_line_usage, plain_text, report_errors
from framework.cli.process_exit import run_and_exit
from framework.deploy.predictions import (
    check_image,
    check_output,
    check_rows_file,
    predict_folder,
    predict_image,
    predict_rows,
)
from framework.deploy.predictors import (
    load_predictor,
)
from framework.errors import UserError

UNSAFE_HELP = (
    "load a model.keras that holds Python code (a Lambda layer), which runs as it "
    "loads: only for a file you trust (without it, such a model is refused)"
)


def main(argv=None):
    parser = one_line_usage(
        argparse.ArgumentParser(
            prog="python -m framework.predict",
            description=plain_text(__doc__),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    parser.add_argument(
        "model",
        type=Path,
        help="a finished run's directory, or a .tflite file from framework.export",
    )
    parser.add_argument(
        "path", type=Path, help="an image file, a folder of images, or a CSV file of rows"
    )
    parser.add_argument("--top", type=int, default=1, metavar="N", help="show the N best classes")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("predictions.csv"),
        help="the CSV written for a folder or rows (default: predictions.csv)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--unsafe", action="store_true", help=UNSAFE_HELP)
    args = parser.parse_args(argv)
    with report_errors():
        if args.top < 1:
            raise UserError(f"--top must be at least 1. Received: --top={args.top}")
        # What can be checked before the model is loaded and run is checked first.
        if args.path.suffix.lower() == ".csv":
            check_rows_file(args.path, args.output, args.overwrite)
            predict_rows(args.model, args.path, args.output, args.overwrite, args.unsafe)
            return
        if args.path.is_dir():
            check_output(args.output, args.overwrite)
        else:
            check_image(args.path)
        predictor = load_predictor(args.model, args.unsafe)
        if args.path.is_dir():
            predict_folder(predictor, args.path, args.output, args.overwrite)
        else:
            predict_image(predictor, args.path, args.top)


if __name__ == "__main__":
    run_and_exit(main)
