"""``python -m framework.serve RUN [--host 127.0.0.1] [--port 8000]``: a prediction server.

Loads a finished run's model once and answers HTTP requests (FastAPI on uvicorn) with the
predictions framework.predict prints: GET /health, GET /metadata (task, classes, input, the
run's scores), POST /predict (one image, as a multipart file "image" or base64 text in JSON
{"image": ...}; or for a run on a CSV file one row, JSON {"row": {column: value}}) and POST
/batch ("images" or "rows": many). An image's answer lists its --top best classes (a request
may ask ?top=N). Inputs are read as in training; the run's directory is only read. A bad
request gets a 4xx JSON {"error", "field"}; a body over --max-bytes is refused (413).

A model.keras is loaded in Keras's safe mode: one that holds Python code (a Lambda layer), which
would run as it loads, is refused unless --unsafe is given.
"""

import argparse
import importlib
import socket
from pathlib import Path

from framework.cli.messages import one_line, one_line_usage, plain_text, report_errors
from framework.cli.process_exit import run_and_exit
from framework.errors import UserError
from framework.parts.ranges import Range

UNSAFE_HELP = (
    "load a model.keras that holds Python code (a Lambda layer), which runs as it "
    "loads: only for a file you trust (without it, such a model is refused)"
)
PORTS = Range(at_least=1, at_most=65535)
MAX_BYTES = Range(at_least=1024, at_most=2**30)
DEFAULT_MAX_BYTES = 10 * 2**20
# The serve extra's modules, and the package that installs each.
SERVE_EXTRA = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}


def main(argv=None):
    parser = one_line_usage(
        argparse.ArgumentParser(
            prog="python -m framework.serve",
            description=plain_text(__doc__),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="a finished run's directory")
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help=f"the port ({PORTS.describe()}; default: 8000)"
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help=f"the largest request body accepted ({MAX_BYTES.describe()}; default: "
        f"{DEFAULT_MAX_BYTES}, 10 MiB)",
    )
    parser.add_argument(
        "--top", type=int, default=1, metavar="N", help="list an image's N best classes"
    )
    parser.add_argument("--unsafe", action="store_true", help=UNSAFE_HELP)
    args = parser.parse_args(argv)
    with report_errors():
        for option, value, accepted in (
            ("--port", args.port, PORTS),
            ("--max-bytes", args.max_bytes, MAX_BYTES),
            ("--top", args.top, Range(at_least=1)),
        ):
            if not accepted.accepts(value):
                raise UserError(
                    f"{option} must be {accepted.describe()}. Received: {option}={value}"
                )
        require_serve_extra()
        from framework.deploy.run_files import finished_record

        finished_record(args.run_dir)  # before the model loads and the port is taken
        listening = listen(args.host, args.port)
        from framework.deploy.serving import create_app

        app = create_app(args.run_dir, args.max_bytes, args.unsafe, args.top)
        serve(app, listening, args.host, args.port)


def require_serve_extra():
    """Imports what the server runs on (the ``serve`` extra), before anything is loaded.

    Raises:
        UserError: FastAPI, uvicorn or python-multipart (image uploads) is not installed.
    """
    for module, package in SERVE_EXTRA.items():
        try:
            importlib.import_module(module)
        except ImportError:
            raise UserError(
                f"the server needs {package}, which is not installed: "
                "pip install 'keras-framework[serve]'"
            ) from None


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, for the server to accept on.

    Raises:
        UserError: the address cannot be taken (in use, not this machine's).
    """
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # TCP named: asyncio turns Nagle's algorithm off only on a socket that says so (else
        # each answer waits about 40 ms for the client's delayed acknowledgement).
        listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        # Listening at once: a second server's bind is refused while this one loads its model
        # (with SO_REUSEADDR alone, two sockets that do not listen yet may share the port).
        listening.listen()
    except (OSError, OverflowError) as e:
        raise UserError(f"cannot listen on {host}:{port}: {one_line(e)}") from None
    return listening


def serve(app, listening: socket.socket, host: str, port: int):
    """Runs the app on uvicorn on an already bound socket until the process is stopped."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False)
    print(f"Serving on http://{host}:{port} (stop with Ctrl-C)", flush=True)
    uvicorn.Server(config).run(sockets=[listening])


if __name__ == "__main__":
    run_and_exit(main)
