"""``python -m <module> ...`` for the tests, forked from an interpreter that has Keras imported.

Importing TensorFlow and Keras takes most of a small run's time (about 7 s of 9 on the 2-core CI
machine), and the suite runs about a hundred commands. Each test worker starts one server
process (this file, run as a script) that imports the backend once; every command then runs in
a child forked from it: ``runpy`` runs the module as ``python -m`` would, in the command's own
working directory, environment, arguments and output files, and the child exits as a Python
process does (threads joined, ``atexit`` handlers run, exit code) but without tearing down its
modules. It sees what a fresh process sees, except that Keras and the libraries below are
already imported. A child is a process of its own: it can be signalled, killed, and run beside
others.

A command runs in a fresh process instead when that difference could matter: another
interpreter option (``-X importtime``), another backend (``KERAS_BACKEND``,
``trainer.backend=``), an environment that differs in more than ``CALL_TIME_ENV`` (read by our
code when it runs, not when a library is imported; a distributed search's ``KERASTUNER_*``
are not: gRPC, which keras-tuner's workers talk over, is slower in a forked child), or
``FRAMEWORK_TEST_COLD=1`` (everything, to check that the suite passes without the server).
"""

import atexit
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Read when the code runs, not when a library is imported: may differ from the server's.
CALL_TIME_ENV = {
    "HYDRA_FULL_ERROR",
    "FRAMEWORK_FULL_ERROR",
    "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD",
    "PATH",
}
SHELL_OPERATORS = set("|&;<>()$`")

_server = None


def run(argv: list[str], cwd, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Runs ``argv`` (``[python, "-m", module, *args]``) like ``subprocess.run(argv, cwd=cwd,
    env=env, capture_output=True, text=True, timeout=timeout)``."""
    process = popen(argv, cwd, env)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def run_shell(command: str, cwd, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Runs a shell command line; a plain ``python -m ...`` one through ``run``."""
    words = _plain_words(command)
    if words and words[:2] == ["python", "-m"]:
        return run([sys.executable, *words[1:]], cwd, env, timeout)
    return subprocess.run(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen(
    argv: list[str], cwd, env: dict | None = None, stdout=subprocess.PIPE, stderr=subprocess.PIPE
):
    """Starts ``argv`` like ``subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout,
    stderr=stderr, text=True)``: ``stdout`` is PIPE or an open file, ``stderr`` PIPE or STDOUT.

    Returns:
        The process: ``pid``, ``returncode``, ``poll``, ``wait``, ``communicate``,
        ``send_signal``, ``kill``.
    """
    env = dict(os.environ) if env is None else env
    if not _forkable(argv, env):
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True)
    return _Child(_warm_server(), argv, cwd, env, stdout, stderr)


def _plain_words(command: str) -> list[str] | None:
    """The words of a command line without pipes, redirections or substitutions; else None."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    words = list(lexer)
    if any(set(word) <= SHELL_OPERATORS for word in words) or "$" in command:
        return None
    return words


def _forkable(argv: list[str], env: dict) -> bool:
    if os.environ.get("FRAMEWORK_TEST_COLD") or argv[0] != sys.executable or argv[1] != "-m":
        return False
    if any("backend=" in arg for arg in argv):
        return False
    keys = set(env) | set(os.environ)
    return all(env.get(k) == os.environ.get(k) for k in keys - CALL_TIME_ENV)


class _Child:
    """A command forked by the server, seen as ``subprocess.Popen`` shows a process."""

    def __init__(self, server, argv, cwd, env, stdout, stderr):
        self.args, self.server, self.returncode = argv, server, None
        self.scratch = tempfile.TemporaryDirectory()
        self.stdout_path = (
            Path(self.scratch.name, "stdout") if stdout == subprocess.PIPE else Path(stdout.name)
        )
        self.stderr_path = (
            self.stdout_path if stderr == subprocess.STDOUT else Path(self.scratch.name, "stderr")
        )
        self.pid = server.start(
            {
                "module": argv[2],
                "args": argv[3:],
                "cwd": str(cwd),
                "env": env,
                "stdout": str(self.stdout_path),
                "stderr": str(self.stderr_path),
            }
        )

    def poll(self):
        return self.wait(timeout=0) if self.returncode is None else self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            code = self.server.exit_code(self.pid, timeout)
            if code is None:
                if timeout == 0:
                    return None
                raise subprocess.TimeoutExpired(self.args, timeout)
            self.returncode = code
        return self.returncode

    def communicate(self, timeout=None):
        """``(stdout, stderr)`` as text, None for a stream that was not PIPE."""
        self.wait(timeout)
        scratch = Path(self.scratch.name)
        stderr_path = None if self.stderr_path == self.stdout_path else self.stderr_path
        stdout, stderr = (
            path.read_text(errors="replace") if path and path.parent == scratch else None
            for path in (self.stdout_path, stderr_path)
        )
        self.scratch.cleanup()
        return stdout, stderr

    def send_signal(self, sig):
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self):
        self.send_signal(signal.SIGKILL)


class _Server:
    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.replies, self.codes = b"", {}
        atexit.register(self.close)

    def start(self, request) -> int:
        """Forks a child for ``request``; returns its pid."""
        self.process.stdin.write(json.dumps(request) + "\n")
        while True:
            reply = self._reply(None)
            if "code" not in reply:
                return reply["pid"]

    def exit_code(self, pid, timeout):
        """The child's exit code (``-signal`` if killed), or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while pid not in self.codes:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._reply(left) is None:
                return None
        return self.codes.pop(pid)

    def _reply(self, timeout):
        """The server's next reply (exit codes are kept), or None if none came in time."""
        fd = self.process.stdout.fileno()
        while b"\n" not in self.replies:
            if not select.select([fd], [], [], timeout)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("the warm test server ended")
            self.replies += chunk
        line, self.replies = self.replies.split(b"\n", 1)
        reply = json.loads(line)
        if "code" in reply:
            self.codes[reply["pid"]] = reply["code"]
        return reply

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def _warm_server() -> _Server:
    global _server
    if _server is None or _server.process.poll() is not None:
        _server = _Server()
    return _server


def _serve():
    """The server: imports the backend, forks a child per request line on stdin, and reports
    each child's pid as it starts and its exit code as it ends."""
    from framework.runtime.backend import import_backend

    import_backend()
    import hydra  # noqa: F401  (and the libraries a run imports next)
    import matplotlib.pyplot  # noqa: F401
    import sklearn.metrics  # noqa: F401

    requests, children, reading = b"", set(), True
    while reading or children:
        if not reading:
            time.sleep(0.02)
        elif select.select([0], [], [], 0.02)[0]:
            chunk = os.read(0, 65536)
            reading = bool(chunk)  # the client closed its end: end once the children have
            requests += chunk
        while b"\n" in requests:
            line, requests = requests.split(b"\n", 1)
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(json.loads(line))  # never returns
            children.add(pid)
            _reply({"pid": pid})
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                _reply({"pid": pid, "code": os.waitstatus_to_exitcode(status)})


def _reply(message: dict):
    print(json.dumps(message), flush=True)


def _child(request):
    import runpy
    import traceback

    from framework.cli.process_exit import exit_without_teardown

    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(
        out
        if request["stderr"] == request["stdout"]
        else os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        2,
    )
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # as python -m sets it
    sys.argv = [request["module"], *request["args"]]
    code = None
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code
    except BaseException:
        traceback.print_exc()
        code = 1
    # With TensorFlow imported the teardown takes 1.5 s, and has no effect a command could show
    # (a framework command ends so by itself, in run_and_exit).
    exit_without_teardown(code)


if __name__ == "__main__":
    _serve()
