"""What serving over HTTP costs: ``python -m framework.serve`` on the digits model against the
same Keras model called directly in a loop, side by side.

Trains the default run (digits, the small CNN) for one epoch in a temporary folder (or takes
``--run DIR``), writes digits from scikit-learn as 8x8 PNG files, starts the server on
127.0.0.1 and asks it:

- single: ``POST /predict``, one image as base64 JSON, per request;
- batch: ``POST /batch``, ``--batch`` images per request;

each with 1 and with 8 concurrent clients (threads, each on its own kept-alive connection),
and prints requests/s, images/s and the p50 and p99 latency. Beside each, the direct figure:
the model loaded in this process and called with ``predict_on_batch`` on images already
decoded and resized, one call after another (no HTTP, no decoding), and the ratio of the
direct images/s over the server's. Both sides run on the same machine, the clients too: on a
small machine the clients' threads take CPU from the server. Run::

    python benchmarks/serve.py [--run DIR] [--requests 200] [--batch 32]
"""

import argparse
import base64
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as framework/__init__.py sets it

CLIENTS = (1, 8)


def train_digits(folder: Path) -> Path:
    """The default run, one epoch, in ``folder/run``."""
    run_dir = folder / "run"
    subprocess.run(
        [sys.executable, "-m", "framework", "trainer.epochs=1", f"hydra.run.dir={run_dir}"],
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return run_dir


def digit_pngs(count: int) -> list[bytes]:
    """``count`` of scikit-learn's 8x8 digits as RGB PNG files, at 0..255 as the dataset serves
    them."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    images = load_digits().images[:count]
    files = []
    for image in images:
        pixels = np.repeat(np.round(image * (255.0 / 16.0))[..., None], 3, axis=-1)
        out = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
        files.append(out.getvalue())
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """The server on ``port``, once it answers /health; its output goes to ``log``."""
    server = subprocess.Popen(
        [sys.executable, "-m", "framework.serve", str(run_dir), "--port", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited {server.returncode}: {log.read_text()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    sys.exit("the server did not answer /health in 180 s")


def client(port: int, path: str, bodies: list[bytes]) -> list[float]:
    """Sends each body in turn on one kept-alive connection; returns each request's seconds."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies = []
    for body in bodies:
        start = time.perf_counter()
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 200:
            sys.exit(f"{path} answered {response.status}: {answer[:300]!r}")
    connection.close()
    return latencies


def served(port: int, path: str, bodies: list[bytes], clients: int) -> dict:
    """Requests/s and latencies of ``bodies`` sent by ``clients`` clients, each its share."""
    shares = [bodies[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [
            t for share in pool.map(lambda s: client(port, path, s), shares) for t in share
        ]
    return figures(latencies, time.perf_counter() - start)


def direct(model, x, calls: int) -> dict:
    """Calls/s and latencies of ``model.predict_on_batch(x)``, one call after another."""
    model.predict_on_batch(x)  # traced once, as the server's first request is
    latencies = []
    start = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        model.predict_on_batch(x)
        latencies.append(time.perf_counter() - t)
    return figures(latencies, time.perf_counter() - start)


def figures(latencies: list[float], seconds: float) -> dict:
    ordered = sorted(latencies)
    return {
        "per_s": len(latencies) / seconds,
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a finished digits run (default: train one)")
    parser.add_argument("--requests", type=int, default=200, help="requests of one image")
    parser.add_argument("--batch", type=int, default=32, help="images of a batch request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run or train_digits(Path(tmp))
        pngs = digit_pngs(max(args.requests, args.batch))
        encoded = [base64.b64encode(p).decode() for p in pngs]
        single = [json.dumps({"image": e}).encode() for e in encoded[: args.requests]]
        batches = max(args.requests // 4, 8)
        batch = [json.dumps({"images": encoded[: args.batch]}).encode()] * batches

        import keras
        import numpy as np
        import tensorflow as tf

        from framework.deploy.images import decode_image

        model = keras.saving.load_model(run_dir / "model.keras", compile=False)
        size, channels = model.input_shape[1:3], model.input_shape[3]
        x = np.stack([tf.cast(decode_image(p, size, channels), tf.float32).numpy() for p in pngs])
        alone = {
            1: direct(model, x[:1], args.requests),
            args.batch: direct(model, x[: args.batch], batches),
        }

        port = free_port()
        server = start_server(run_dir, port, Path(tmp) / "server.log")
        try:
            rows = []
            for name, path, bodies, images in (
                ("single", "/predict", single, 1),
                (f"batch of {args.batch}", "/batch", batch, args.batch),
            ):
                served(port, path, bodies[:8], 1)  # warm: the server's first calls trace
                for clients in CLIENTS:
                    rows.append((name, clients, images, served(port, path, bodies, clients)))
        finally:
            server.terminate()
            server.wait(30)
    print(
        f"{'requests':<12} {'clients':>7} {'req/s':>8} {'images/s':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7}   {'direct images/s':>15} {'p50 ms':>7}  {'ratio':>6}"
    )
    for name, clients, images, s in rows:
        d = alone[images]
        print(
            f"{name:<12} {clients:>7} {s['per_s']:>8.1f} {s['per_s'] * images:>9.1f} "
            f"{s['p50']:>7.1f} {s['p99']:>7.1f}   {d['per_s'] * images:>15.1f} {d['p50']:>7.2f}  "
            f"{d['per_s'] / s['per_s']:>5.1f}x"
        )
    print("ratio: the direct loop's images/s over the server's (how many times faster).")


if __name__ == "__main__":
    main()
