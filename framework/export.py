"""``python -m framework.export RUN_DIR --format F [--quantize Q]``: export a run for deployment.

F is ``savedmodel`` or ``tflite``; Q, for tflite only, ``float16`` or ``int8``. By default into
``RUN_DIR/export/``: ``savedmodel/`` (a TensorFlow SavedModel with a
``serving_default`` signature), ``model.tflite`` (float32), ``model_float16.tflite`` (float16
weights) or ``model_int8.tflite`` (int8 weights and activations, calibrated on training inputs;
float32 input and output). A run that classifies is exported, on images or on feature rows:
every model takes what the run's model takes, raw 0..255 images or a tabular run's rows encoded
and scaled (for a CSV file, as its dataset's ``rows`` reader encodes them). A ``.json`` beside
it holds the class names and, for images, the resize method, so that
``python -m framework.predict model.tflite IMAGES`` needs nothing else. An existing export is
replaced only with ``--overwrite``; a new one appears whole or not at all. The run's model.keras
is loaded in Keras's safe mode: one that holds Python code (a Lambda layer), which would run as
it loads, is refused unless --unsafe is given.
"""

import argparse
from pathlib import Path

from framework.cli.messages import one_line_usage, plain_text, report_errors
from framework.cli.process_exit import run_and_exit
from framework.deploy.exporting import (
    FORMATS,
    QUANTIZATIONS,
    disk_size,
    export,
    human_size,
)
from framework.predict import UNSAFE_HELP


def main(argv=None):
    parser = one_line_usage(
        argparse.ArgumentParser(
            prog="python -m framework.export",
            description=plain_text(__doc__),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    parser.add_argument("run_dir", type=Path, help="a finished run's directory")
    parser.add_argument(
        "--format",
        required=True,
        metavar="|".join(FORMATS),
        help="savedmodel (TensorFlow Serving, TF.js) or tflite (mobile, edge)",
    )
    parser.add_argument(
        "--quantize",
        metavar="|".join(QUANTIZATIONS),
        help="tflite only: float16 weights, or int8 weights and activations",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="the SavedModel folder or .tflite file to write (default: in RUN_DIR/export/)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")
    parser.add_argument("--unsafe", action="store_true", help=UNSAFE_HELP)
    args = parser.parse_args(argv)
    with report_errors():
        for path in export(
            args.run_dir, args.format, args.quantize, args.output, args.overwrite, args.unsafe
        ):
            print(f"Wrote: {path} ({human_size(disk_size(path))})")


if __name__ == "__main__":
    run_and_exit(main)
