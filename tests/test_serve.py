"""framework.serve: a server started on 127.0.0.1 for an image run and a regression CSV run,
asked over real HTTP; its answers are framework.predict's for the same inputs."""

import base64
import contextlib
import csv
import http.client
import io
import json
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from framework.deploy.serving import ServedRun
from framework.errors import UserError
from framework.predict import main as predict_main
from framework.run.train import train
from framework.serve import listen
from framework.serve import main as serve_main
from framework_plugins.datasets.sample_csv import houses
from framework_plugins.datasets.shapes import write_shapes_tree

from conftest import assert_one_line_error, compose_config, run_importing, wait_until

FEATURES = ["area_m2", "rooms", "age_years", "distance_km", "neighbourhood"]
MAX_BYTES = 64 * 1024
ROW = {
    "area_m2": 178.2,
    "rooms": 7,
    "age_years": 35,
    "distance_km": 3.45,
    "neighbourhood": "centre",
}
# Finite in JSON and float64, infinite in float32: the model's output is not a number.
HUGE_ROW = ROW | {"area_m2": 1e300}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def snapshot(folder: Path) -> dict:
    """Every file and folder below ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


class Server:
    """``python -m framework.serve RUN`` in a process of its own, on a free port."""

    def __init__(self, run_dir: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "framework.serve", str(run_dir), "--port", str(self.port)]
            + ["--max-bytes", str(MAX_BYTES)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the server exited {self.process.returncode}: {self.log.read_text()}")
        with contextlib.suppress(OSError):
            return self.get("/health") == (200, {"status": "ok"})
        return False

    def get(self, path: str):
        return self.call(urllib.request.Request(self.url + path))

    def post(self, path: str, body: bytes, content_type: str = "application/json"):
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": content_type}
        )
        return self.call(request)

    def post_json(self, path: str, value):
        return self.post(path, json.dumps(value).encode())

    @staticmethod
    def call(request):
        """``(status, JSON body)`` of a request, whatever its status."""
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart form of ``(field, file bytes)`` pairs, and its content type."""
    boundary = "serve-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="x.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
        + data
        + b"\r\n"
        for field, data in files
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny image run and a tiny regression CSV run, each served; both servers stop after
    the module, and each run's files are snapshot before its server starts."""
    root = tmp_path_factory.mktemp("serve")
    write_shapes_tree(
        root / "shapes", seed=42, num_classes=3, samples_per_class=40, image_size=(24, 24)
    )
    train(
        compose_config(
            "experiment=cnn_multiclass",
            f"dataset.path={root / 'shapes'}",
            "backbone.input_size=[24,24]",
            "trainer.epochs=2",
            "trainer.verbose=0",
        ),
        root / "image_run",
    )
    # Each server starts as soon as its run is trained: the first loads while the second trains.
    before = {"image_run": snapshot(root / "image_run")}
    servers = {"image_run": Server(root / "image_run", root / "image_run.log")}
    try:
        header, rows = houses(120, seed=7)
        with open(root / "houses.csv", "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        train(
            compose_config(
                "dataset=csv",
                f"dataset.path={root / 'houses.csv'}",
                "dataset.target=price",
                "trainer.epochs=2",
                "trainer.verbose=0",
            ),
            root / "csv_run",
        )
        before["csv_run"] = snapshot(root / "csv_run")
        servers["csv_run"] = Server(root / "csv_run", root / "csv_run.log")
        for name, server in servers.items():
            wait_until(server.ready, 180, f"the {name} server's /health")
        yield root, servers, before
    finally:
        for server in servers.values():
            server.stop()


def printed(*args) -> list[str]:
    """What ``python -m framework.predict *args`` prints, run in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        predict_main([str(a) for a in args])
    return out.getvalue().splitlines()


def images(root, count):
    return sorted((root / "shapes" / "test").rglob("*.png"))[:count]


def top_lines(answer) -> list[str]:
    """An answer's top classes as framework.predict prints them with --top."""
    width = max(len(name) for name in ("circle", "square", "triangle"))
    return [
        f"  {rank}. {best['class']:<{width}}  {best['confidence']:.1%}"
        for rank, best in enumerate(answer["top"], start=1)
    ]


@pytest.mark.slow
def test_image_answers_are_framework_predicts(runs):
    root, servers, _ = runs
    server = servers["image_run"]
    files = images(root, 4)
    body, content_type = multipart([("image", files[0].read_bytes())])
    status, answer = server.post("/predict?top=3", body, content_type)
    assert status == 200, answer
    expected = printed(root / "image_run", files[0], "--top", "3")
    assert [f"Prediction: {answer['text']}", *top_lines(answer)] == expected
    assert answer["class"] == answer["top"][0]["class"]
    assert sum(best["confidence"] for best in answer["top"]) == pytest.approx(1, abs=1e-5)
    # The same file as base64 in JSON: the same answer; without ?top, the server's --top (1).
    status, same = server.post_json(
        "/predict", {"image": base64.b64encode(files[0].read_bytes()).decode()}
    )
    assert status == 200 and same["text"] == answer["text"] and len(same["top"]) == 1
    assert same["confidence"] == pytest.approx(answer["confidence"], abs=1e-6)
    # A batch, as files and as base64: one answer each, in order, as predict prints them.
    body, content_type = multipart([("images", f.read_bytes()) for f in files])
    status, batch = server.post("/batch", body, content_type)
    assert status == 200, batch
    texts = [f"Prediction: {a['text']}" for a in batch["predictions"]]
    assert texts == [printed(root / "image_run", f)[0] for f in files]
    encoded = [base64.b64encode(f.read_bytes()).decode() for f in files]
    status, batch_json = server.post_json("/batch", {"images": encoded})
    assert [a["text"] for a in batch_json["predictions"]] == [
        a["text"] for a in batch["predictions"]
    ]


def house_rows(root, count) -> list[dict]:
    rows = list(csv.DictReader((root / "houses.csv").open()))[:count]
    return [{c: row[c] for c in FEATURES} for row in rows]


def test_row_answers_are_framework_predicts(runs, tmp_path):
    root, servers, _ = runs
    server = servers["csv_run"]
    rows = house_rows(root, 3)
    with open(tmp_path / "rows.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FEATURES)
        writer.writeheader()
        writer.writerows(rows)
    lines = printed(root / "csv_run", tmp_path / "rows.csv", "--output", tmp_path / "out.csv")
    written = list(csv.DictReader((tmp_path / "out.csv").open()))
    # Numbers as JSON numbers, texts as texts: encoded as the CSV file's cells are.
    numeric = [{k: v if k == "neighbourhood" else float(v) for k, v in r.items()} for r in rows]
    status, one = server.post_json("/predict", {"row": numeric[0]})
    assert status == 200, one
    assert one == {"text": written[0]["price"], "values": {"price": written[0]["price"]}}
    status, batch = server.post_json("/batch", {"rows": numeric})
    assert status == 200, batch
    assert [f"Row {i + 1}: {a['text']}" for i, a in enumerate(batch["predictions"])] == lines[:3]
    assert [a["values"]["price"] for a in batch["predictions"]] == [r["price"] for r in written]


def test_concurrent_requests_get_each_their_own_answer(runs):
    root, servers, _ = runs
    image_server, rows_server = servers["image_run"], servers["csv_run"]
    files = images(root, 6)
    encoded = [base64.b64encode(f.read_bytes()).decode() for f in files]
    rows = house_rows(root, 6)
    alone = [image_server.post_json("/predict", {"image": e})[1] for e in encoded]
    alone_rows = [rows_server.post_json("/predict", {"row": r})[1] for r in rows]

    def ask(i):
        if i % 2:
            return rows_server.post_json("/predict", {"row": rows[i % 6]})
        return image_server.post_json("/predict", {"image": encoded[i % 6]})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(24)))
    assert all(status == 200 for status, _ in answers), answers
    for i, (_, answer) in enumerate(answers):
        expected = alone_rows[i % 6] if i % 2 else alone[i % 6]
        assert answer["text"] == expected["text"]
        if not i % 2:
            assert answer["confidence"] == pytest.approx(expected["confidence"], abs=1e-6)


def test_metadata_names_the_task_the_input_and_the_scores(runs):
    root, servers, _ = runs
    status, image = servers["image_run"].get("/metadata")
    metrics = json.loads((root / "image_run" / "metrics.json").read_text())
    assert status == 200 and image["task"] == "classification"
    assert image["classes"] == ["circle", "square", "triangle"]
    assert image["input"]["kind"] == "image" and image["input"]["shape"] == [24, 24, 3]
    assert image["scores"]["validation"] == metrics["validation"]
    assert image["scores"]["objective"] == metrics["objective"]
    status, rows = servers["csv_run"].get("/metadata")
    assert status == 200 and rows["task"] == "regression" and rows["targets"] == ["price"]
    assert rows["input"]["kind"] == "rows" and rows["input"]["columns"] == FEATURES
    assert rows["scores"]["test"]["mae"] > 0


@pytest.mark.parametrize(
    "server, path, body, content_type, status, field, fragment",
    [
        ("image_run", "/predict", {"picture": "x"}, None, 422, "picture", "unknown field"),
        ("image_run", "/predict", {}, None, 422, "image", "missing field 'image'"),
        ("image_run", "/predict", {"image": "%%%"}, None, 422, "image", "not valid base64"),
        (
            "image_run",
            "/predict",
            {"image": "aGVsbG8="},
            None,
            422,
            "image",
            "not a readable image",
        ),
        ("image_run", "/batch", {"images": []}, None, 422, "images", "non-empty list"),
        ("image_run", "/predict?top=0", {"image": ""}, None, 422, "top", "top must be"),
        # "²".isdigit() is True, but int("²") fails.
        ("image_run", "/predict?top=%C2%B2", {"image": ""}, None, 422, "top", "top=²"),
        ("image_run", "/predict", b"{not json", None, 400, "body", "not valid JSON"),
        ("image_run", "/predict", b"x", "text/plain", 415, "content-type", "text/plain"),
        ("csv_run", "/predict", {"row": {"rooms": 3}}, None, 422, "row", "no column"),
        ("csv_run", "/predict", {"row": {"rooms": [3]}}, None, 422, "row.rooms", "a number"),
        ("csv_run", "/batch", {"rows": [{"a": 1}, 5]}, None, 422, "rows[1]", "an object"),
        ("csv_run", "/predict", {"row": {}}, None, 422, "row", "an object"),
        ("csv_run", "/predict", {"row": HUGE_ROW}, None, 422, "row", "no finite prediction"),
        ("csv_run", "/batch", {"rows": [ROW, HUGE_ROW]}, None, 422, "rows[1]", "no finite"),
    ],
)
def test_bad_requests_are_4xx_json_naming_the_field(
    runs, server, path, body, content_type, status, field, fragment
):
    _, servers, _ = runs
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    got, answer = servers[server].post(path, data, content_type or "application/json")
    assert (got, answer.get("field")) == (status, field), answer
    assert fragment in answer["error"] and "Traceback" not in answer["error"]


def test_a_body_over_max_bytes_and_an_unknown_route_are_refused_in_json(runs):
    root, servers, _ = runs
    server = servers["image_run"]
    status, answer = server.post_json("/predict", {"image": "A" * MAX_BYTES})
    assert (status, answer["field"]) == (413, "body") and f"--max-bytes {MAX_BYTES}" in answer[
        "error"
    ]
    # Sent in chunks, with no Content-Length to refuse it by: refused as it is read.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    chunks = (b"x" * 8192 for _ in range(MAX_BYTES // 8192 + 2))
    connection.request(
        "POST", "/predict", chunks, {"Content-Type": "application/json"}, encode_chunked=True
    )
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["field"] == "body"
    connection.close()
    status, answer = server.get("/nowhere")
    assert status == 404 and answer["error"].startswith("no route GET /nowhere; routes: ")
    status, answer = server.get("/predict")
    assert status == 405 and "POST /predict" in answer["error"]
    # The server still answers after each refusal.
    assert server.get("/health") == (200, {"status": "ok"})


def test_metadata_of_a_run_with_a_non_finite_score_writes_null(runs, tmp_path):
    # A diverged run's val_loss is NaN in its metrics.json, which a JSON answer cannot hold.
    root, _, _ = runs
    shutil.copytree(root / "csv_run", tmp_path / "diverged")
    metrics_path = tmp_path / "diverged" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["validation"]["loss"] = float("nan")
    metrics["objective"]["value"] = float("inf")
    metrics_path.write_text(json.dumps(metrics))
    metadata = ServedRun(tmp_path / "diverged").metadata()
    scores = json.loads(json.dumps(metadata, allow_nan=False))["scores"]
    assert scores["validation"]["loss"] is None and scores["objective"]["value"] is None
    assert scores["validation"]["mae"] == metrics["validation"]["mae"]


def serve_command(*args, cwd):
    """``python -m framework.serve *args`` that exits (a refusal): its CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "framework.serve", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_bad_run_or_option_is_one_line_before_the_server_starts(runs, tmp_path):
    root, _, _ = runs
    result = serve_command(tmp_path, cwd=tmp_path)
    assert_one_line_error(result, f"{tmp_path} is not a finished run")
    result = serve_command(root / "image_run", "--max-bytes", "10", cwd=tmp_path)
    assert_one_line_error(result, "--max-bytes must be >= 1024", "Received: --max-bytes=10")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_command(root / "image_run", "--port", port, cwd=tmp_path)
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "in use")


def test_a_port_taken_by_a_server_still_loading_is_refused():
    # The first server's socket listens as soon as it is bound, before its model loads.
    port = free_port()
    with listen("127.0.0.1", port), pytest.raises(UserError, match="in use"):
        listen("127.0.0.1", port)


@pytest.mark.parametrize(
    "module, package",
    [("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("python_multipart", "python-multipart")],
)
def test_without_the_serve_extra_one_line_names_it(monkeypatch, capsys, tmp_path, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import fails
    with pytest.raises(SystemExit) as exited:
        serve_main([str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"needs {package}" in err
    assert "pip install 'keras-framework[serve]'" in err


def test_help_imports_no_tensorflow(tmp_path):
    result, imported = run_importing("-m", "framework.serve", "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m framework.serve")
    assert "framework.cli.messages" in imported and not {"tensorflow", "keras", "jax"} & imported


def test_the_server_never_wrote_into_the_run_dirs(runs):
    # Last in the module: every request above has been answered.
    root, _, before = runs
    assert {name: snapshot(root / name) for name in before} == before
