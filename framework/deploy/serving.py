"""The prediction server's app: a finished run's model loaded once, answering HTTP requests with
the predictions ``framework.predict`` prints, its inputs read as in training.

``GET /health``, ``GET /metadata``, ``POST /predict`` (one image or one row) and ``POST /batch``
(many). Every refusal is a JSON ``{"error", "field"}`` with a 4xx status; the run's directory is
only read.
"""

import base64
import binascii
import io
import json
import math
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from framework.deploy.images import IMAGE_EXTENSIONS, decode_image, is_readable
from framework.deploy.predictions import image_answer, rows_dataset
from framework.deploy.predictors import Predictor
from framework.deploy.run_files import finished_record, load_run_model, read_run

ROUTES = ("GET /health", "GET /metadata", "POST /predict", "POST /batch")
IMAGE, ROWS = "image", "rows"
# The field that holds a request's input, by input kind: (one, many).
FIELDS = {IMAGE: ("image", "images"), ROWS: ("row", "rows")}
JSON_TYPE, MULTIPART_TYPE = "application/json", "multipart/form-data"


class BadRequest(Exception):
    """A request the server refuses: its status, the reason and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class ServedRun:
    """A finished run's model, loaded once, with what reading its inputs takes.

    Args:
        run_dir: the run's directory.
        unsafe: load a model.keras that holds Python code (see ``load_run_model``).

    Raises:
        UserError: not a finished run, a damaged or unsafe model.keras, or a run whose inputs
            are neither images nor rows of a CSV file.
    """

    def __init__(self, run_dir: Path, unsafe: bool = False):
        from framework.errors import UserError
        from framework.parts.loading import load_plugins
        from framework.parts.tasks import task_of_run

        self.run_dir = run_dir
        self.record = finished_record(run_dir)
        load_plugins()  # the run's task and dataset may be any plugin's
        self.task = task_of_run(self.record.as_dict())
        try:
            self.dataset = rows_dataset(run_dir, self.record)
        except UserError:  # not trained on rows: images
            self.dataset = None
        if self.dataset is not None:
            self.kind, self.model = ROWS, load_run_model(run_dir, unsafe)
        else:  # a classifier of images, or refused as framework.predict refuses it
            class_names, interpolation = read_run(run_dir)
            self.kind = IMAGE
            self.images = Predictor(load_run_model(run_dir, unsafe), class_names, interpolation)
            self.model = self.images.model
            self.decode = image_decoder(self.images)
        # Keras models are not made for calls from several threads at once: one at a time.
        self.lock = threading.Lock()

    def metadata(self) -> dict:
        """The task, its classes (or targets, labels), the input and the run's scores."""
        data, record = self.record.data, self.record
        shape = [int(d) for d in self.model.input_shape[1:]]
        model_input = {"kind": self.kind, "fields": list(FIELDS[self.kind]), "shape": shape}
        if self.kind == IMAGE:
            model_input.update(interpolation=self.images.interpolation, formats=IMAGE_EXTENSIONS)
        else:
            columns = data.get("inputs", {}).get("columns", [])
            model_input["columns"] = [c["name"] for c in columns if isinstance(c, dict)]
        return json_safe(
            {
                "run": str(self.run_dir),
                "task": self.task.name,
                **{key: data[key] for key in ("classes", "targets", "labels") if key in data},
                "input": model_input,
                "scores": {
                    "evaluated_on": record.evaluated_on,
                    "validation": record.validation,
                    record.evaluated_on: record.test,
                    "objective": record.objective,
                },
            }
        )

    def outputs(self, x, field: str):
        """The model's outputs for a batch of inputs, one call at a time.

        Raises:
            BadRequest: an input whose outputs are not all finite (an input too large for
                float32 gives inf, and the model NaN), 422, named by ``field``.
        """
        import numpy as np

        with self.lock:
            outputs = np.asarray(self.model.predict_on_batch(x))
        finite = np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
        if not finite.all():
            i = int(np.argmin(finite))
            name = f"{field}[{i}]" if field in (FIELDS[IMAGE][1], FIELDS[ROWS][1]) else field
            cause = " (a number over float32's 3.4e38 gives one)" if self.kind == ROWS else ""
            raise BadRequest(
                422,
                f"{name} gives no finite prediction: the model's output is NaN or infinite{cause}",
                name,
            )
        return outputs

    def predict_images(self, contents: list[bytes], field: str, top: int) -> list[dict]:
        """Answers for image files' bytes, each as ``image_answer`` gives it.

        Raises:
            BadRequest: an input that is not a readable image (422), named by ``field``.
        """
        import numpy as np

        from framework.parts.contexts import class_probabilities
        from framework.runtime.backend import require_tensorflow

        tf = require_tensorflow("reading images for a prediction")
        images = []
        for i, image in enumerate(contents):
            name = field if len(contents) == 1 and field == FIELDS[IMAGE][0] else f"{field}[{i}]"
            unreadable = BadRequest(
                422,
                f"{name} is not a readable image file (accepted: {', '.join(IMAGE_EXTENSIONS)}, "
                "complete files)",
                name,
            )
            if not is_readable(io.BytesIO(image)):
                raise unreadable
            try:
                images.append(self.decode(image))
            except tf.errors.OpError:
                raise unreadable from None
        x = tf.stack(images).numpy()
        probs = class_probabilities(self.outputs(x, field))
        return [image_answer(self.images.class_names, np.asarray(p), top) for p in probs]

    def predict_rows(self, rows: list[dict], field: str) -> list[dict]:
        """Answers for rows (``{column: value}``): ``text`` as ``framework.predict`` prints it,
        and ``values``, the columns it writes (the task's prediction in its own terms).

        Raises:
            BadRequest: a cell that is not a number, a text or null, or rows the dataset's
                reader refuses (a missing column, a number that is not one), 422.
        """
        from framework.errors import UserError

        header = list(dict.fromkeys(column for row in rows for column in row))
        cells = []
        for i, row in enumerate(rows):
            line = []
            for column in header:
                value = row.get(column)
                if isinstance(value, (dict, list, bool)):
                    name = f"{field}.{column}" if len(rows) == 1 else f"{field}[{i}].{column}"
                    raise BadRequest(
                        422, f"{name} must be a number, a text or null, not {value!r}", name
                    )
                line.append("" if value is None else str(value))
            cells.append(line)
        try:
            x = self.dataset.read_rows(self.record.data, header, cells, f"the request's {field}")
        except UserError as e:
            raise BadRequest(422, str(e), field) from None
        predicted = self.task.predictions(self.outputs(x, field), self.record.data)
        answers = []
        for i in range(len(rows)):
            values = {name: column[i] for name, column in predicted.items()}
            answers.append({"text": self.task.prediction_text(values), "values": values})
        return answers


def json_safe(value):
    """``value`` with every float that is not finite (a diverged run's NaN loss) as None, which
    JSON writes as null (a JSON answer holds no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def image_decoder(images: Predictor):
    """A function from an image file's bytes to the model's float32 input, decoded and resized
    as in training, traced once as a graph (each op dispatched on its own costs more than the
    decoding of a small image).

    Args:
        images: the predictor whose input size, channels and resize method it keeps.

    Returns:
        A TensorFlow function of a scalar string tensor (or bytes).
    """
    from framework.runtime.backend import require_tensorflow

    tf = require_tensorflow("reading images for a prediction")
    size, channels, interpolation = images.size, images.channels, images.interpolation
    return tf.function(
        lambda contents: tf.cast(decode_image(contents, size, channels, interpolation), tf.float32),
        input_signature=[tf.TensorSpec([], tf.string)],
    )


def create_app(run_dir, max_bytes: int, unsafe: bool = False, top: int = 1) -> FastAPI:
    """The prediction server's ASGI app for a finished run, its model loaded now.

    Args:
        run_dir: the run's directory (only read).
        max_bytes: the largest request body accepted; a larger one is refused (413).
        unsafe: load a model.keras that holds Python code (see ``load_run_model``).
        top: how many of the best classes an image's answer lists, unless the request asks
            for another number (``?top=N``).

    Returns:
        The FastAPI app.

    Raises:
        UserError: not a finished run, a damaged or unsafe model.keras, or a run whose inputs
            are neither images nor rows of a CSV file.
    """
    served = ServedRun(Path(run_dir), unsafe)
    app = FastAPI(title=f"framework.serve {run_dir}", docs_url=None, redoc_url=None)

    @app.exception_handler(BadRequest)
    async def refused(request: Request, e: BadRequest):
        body = {"error": e.message} | ({"field": e.field} if e.field else {})
        return JSONResponse(body, status_code=e.status)

    @app.exception_handler(HTTPException)
    async def no_route(request: Request, e: HTTPException):
        message = (
            f"no route {request.method} {request.url.path}; routes: {', '.join(ROUTES)}"
            if e.status_code in (404, 405)
            else str(e.detail)
        )
        return JSONResponse({"error": message}, status_code=e.status_code)

    @app.exception_handler(Exception)
    async def failed(request: Request, e: Exception):
        # A fault of the server, not of the request: a line, no traceback (the log has it).
        return JSONResponse({"error": f"the server failed: {type(e).__name__}"}, 500)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata():
        return served.metadata()

    @app.post("/predict")
    async def predict(request: Request):
        field = FIELDS[served.kind][0]
        inputs = await request_inputs(request, served.kind, field, max_bytes)
        answers = await answer(served, inputs, field, request_top(request, served.kind, top))
        return answers[0]

    @app.post("/batch")
    async def batch(request: Request):
        field = FIELDS[served.kind][1]
        inputs = await request_inputs(request, served.kind, field, max_bytes)
        answers = await answer(served, inputs, field, request_top(request, served.kind, top))
        return {"predictions": answers}

    return app


async def answer(served: ServedRun, inputs: list, field: str, top: int) -> list[dict]:
    """The served model's answers, worked out in a thread of the pool (the loop goes on)."""
    if served.kind == IMAGE:
        return await run_in_threadpool(served.predict_images, inputs, field, top)
    return await run_in_threadpool(served.predict_rows, inputs, field)


def request_top(request: Request, kind: str, default: int) -> int:
    """The ``top`` query parameter, or ``default``.

    Raises:
        BadRequest: not a whole number >= 1, or asked of a run that predicts rows (422).
    """
    value = request.query_params.get("top")
    if value is None:
        return default
    if kind != IMAGE:
        raise BadRequest(
            422, "top lists the best classes of an image; this run predicts rows", "top"
        )
    if not is_whole_number(value) or int(value) < 1:
        raise BadRequest(422, f"top must be a whole number >= 1. Received: top={value}", "top")
    return int(value)


async def request_inputs(request: Request, kind: str, field: str, max_bytes: int) -> list:
    """A request's inputs: image files' bytes or rows (``{column: value}``), from a JSON body
    (base64 text for images) or, for images, a multipart form's files.

    Raises:
        BadRequest: a body over ``max_bytes`` (413), of another content type (415), or a
            missing, unknown or malformed field (400, 422).
    """
    body = await limited_body(request, max_bytes)
    many = field == FIELDS[kind][1]
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == JSON_TYPE:
        value = json_field(body, field)
        values = value if many else [value]
        if many and (not isinstance(value, list) or not value):
            raise BadRequest(422, f"{field} must be a non-empty list", field)
        if kind == IMAGE:
            inputs = [
                base64_image(v, f"{field}[{i}]" if many else field) for i, v in enumerate(values)
            ]
        else:
            for i, row in enumerate(values):
                if not isinstance(row, dict) or not row:
                    name = f"{field}[{i}]" if many else field
                    raise BadRequest(
                        422, f"{name} must be an object of column names and values", name
                    )
            inputs = values
        return inputs
    if media == MULTIPART_TYPE and kind == IMAGE:
        return await form_files(request, body, field, many)
    accepted = f"{JSON_TYPE} or {MULTIPART_TYPE}" if kind == IMAGE else JSON_TYPE
    raise BadRequest(
        415, f"the body must be {accepted}. Received: {media or 'no content type'}", "content-type"
    )


async def limited_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, read up to ``max_bytes``.

    Raises:
        BadRequest: a body over ``max_bytes`` (413), refused before it is read where its
            Content-Length says so.
    """
    over = BadRequest(
        413, f"the request's body is over the server's --max-bytes {max_bytes}", "body"
    )
    length = request.headers.get("content-length", "")
    if is_whole_number(length) and int(length) > max_bytes:
        raise over
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise over
        chunks.append(chunk)
    return b"".join(chunks)


def is_whole_number(text: str) -> bool:
    """Whether ``text`` is ASCII digits, which ``int`` reads (``"²".isdigit()`` is True too)."""
    return text.isascii() and text.isdigit()


def json_field(body: bytes, field: str):
    """The one field of a JSON object body.

    Raises:
        BadRequest: not JSON (400), not an object, the field missing or others beside it (422).
    """
    try:
        data = json.loads(body)
    except ValueError as e:
        raise BadRequest(400, f"the body is not valid JSON: {e}", "body") from None
    if not isinstance(data, dict):
        raise BadRequest(422, f'the body must be a JSON object: {{"{field}": ...}}', "body")
    unknown = [key for key in data if key != field]
    if unknown:
        raise BadRequest(422, f"unknown field {unknown[0]!r}; accepted: {field}", unknown[0])
    if field not in data:
        raise BadRequest(422, f"missing field {field!r}", field)
    return data[field]


def base64_image(value, name: str) -> bytes:
    """An image file's bytes from its base64 text.

    Raises:
        BadRequest: not a text of base64 (422).
    """
    if not isinstance(value, str):
        raise BadRequest(422, f"{name} must be an image file as base64 text", name)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(422, f"{name} is not valid base64", name) from None


async def form_files(request: Request, body: bytes, field: str, many: bool) -> list[bytes]:
    """The files of a multipart form's field, from its body already read.

    Raises:
        BadRequest: an unreadable form, an unknown field, the field missing, not a file, or
            more than one where one is expected (422).
    """

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception as e:  # the multipart parser's errors have no common class
        raise BadRequest(422, f"the body is not a readable multipart form: {e}", "body") from None
    try:  # each file is spooled to a temporary file until the form is closed
        return await form_field_files(form, field, many)
    finally:
        await form.close()


async def form_field_files(form, field: str, many: bool) -> list[bytes]:
    """The bytes of the files of a parsed form's field (see ``form_files``)."""
    unknown = [key for key in form if key != field]
    if unknown:
        raise BadRequest(422, f"unknown field {unknown[0]!r}; accepted: {field}", unknown[0])
    files = form.getlist(field)
    if not files:
        raise BadRequest(422, f"missing field {field!r}", field)
    if not many and len(files) > 1:
        raise BadRequest(
            422, f"{field} holds {len(files)} files; POST /batch predicts several", field
        )
    if any(isinstance(f, str) for f in files):
        raise BadRequest(422, f"{field} must be a file, not a text field", field)
    return [await f.read() for f in files]
