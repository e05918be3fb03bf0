"""``python -m <module> ...`` for the tests, forked from an interpreter that has Keras imported.

Importing TensorFlow and Keras takes most of a small run's time (about 7 s of 9 on the 2-core CI
machine), and the suite runs about a hundred commands. Each test worker starts one server
process (this file, run as a script) that imports the backend once; every command then runs in
a child forked from it: ``runpy`` runs the module as ``python -m`` would, in the command's own
working directory, environment, arguments and output files, and the child exits as a Python
process does (threads joined, ``atexit`` handlers run, exit code) but without tearing down its
modules. It sees what a fresh process sees, except that Keras and the libraries below are
already imported.

A command runs in a fresh process instead when that difference could matter: another
interpreter option (``-X importtime``), another backend (``KERAS_BACKEND``,
``trainer.backend=``), an environment that differs in more than ``CALL_TIME_ENV`` (read by our
code when it runs, not when a library is imported), or ``FRAMEWORK_TEST_COLD=1`` (everything,
to check that the suite passes without the server).
"""

import atexit
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

# Read when the code runs, not when a library is imported: may differ from the server's.
CALL_TIME_ENV = {"HYDRA_FULL_ERROR", "FRAMEWORK_FULL_ERROR", "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD",
                 "PATH"}
SHELL_OPERATORS = set("|&;<>()$`")

_server = None


def run(argv: list[str], cwd, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Runs ``argv`` (``[python, "-m", module, *args]``) like ``subprocess.run(argv, cwd=cwd,
    env=env, capture_output=True, text=True, timeout=timeout)``."""
    if not _forkable(argv, env):
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    return _warm_server().run(argv, cwd, env, timeout)


def run_shell(command: str, cwd, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Runs a shell command line; a plain ``python -m ...`` one through ``run``."""
    words = _plain_words(command)
    if words and words[:2] == ["python", "-m"]:
        return run([sys.executable, *words[1:]], cwd, env, timeout)
    return subprocess.run(command, shell=True, cwd=cwd, env=env, executable="/bin/bash",
                          capture_output=True, text=True, timeout=timeout)


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


class _Server:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)
        self.replies = b""
        atexit.register(self.close)

    def run(self, argv, cwd, env, timeout):
        with tempfile.TemporaryDirectory() as scratch:
            out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
            request = {"module": argv[2], "args": argv[3:], "cwd": str(cwd), "env": env,
                       "stdout": str(out), "stderr": str(err)}
            self.process.stdin.write(json.dumps(request) + "\n")
            pid = self._reply(None)["pid"]
            code, timed_out = self._wait(pid, timeout), False
            if code is None:
                os.kill(pid, 9)
                code, timed_out = self._wait(pid, None), True
            result = subprocess.CompletedProcess(argv, code, out.read_text(errors="replace"),
                                                 err.read_text(errors="replace"))
        if timed_out:
            raise subprocess.TimeoutExpired(argv, timeout, result.stdout, result.stderr)
        return result

    def _wait(self, pid, timeout):
        """The child's exit code (``-signal`` if killed), or None after ``timeout`` seconds."""
        reply = self._reply(timeout)
        if reply is None:
            return None
        assert reply["pid"] == pid
        return reply["code"]

    def _reply(self, timeout):
        """The server's next reply line, or None if none came within ``timeout`` seconds."""
        import select

        fd = self.process.stdout.fileno()
        while b"\n" not in self.replies:
            if not select.select([fd], [], [], timeout)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("the warm test server ended")
            self.replies += chunk
        line, self.replies = self.replies.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def _warm_server() -> _Server:
    global _server
    if _server is None or _server.process.poll() is not None:
        _server = _Server()
    return _server


def _serve():
    """The server: imports the backend, then forks a child per request line on stdin."""
    from framework.backend import import_backend

    import_backend()
    import hydra  # noqa: F401  (and the libraries a run imports next)
    import matplotlib.pyplot  # noqa: F401
    import sklearn.metrics  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)  # never returns
        reply = {"pid": pid}
        print(json.dumps(reply), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({**reply, "code": os.waitstatus_to_exitcode(status)}), flush=True)


def _child(request):
    import runpy
    import threading
    import traceback

    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # as python -m sets it
    sys.argv = [request["module"], *request["args"]]
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as e:  # as the interpreter reads sys.exit's argument
        code = e.code if isinstance(e.code, int) else (e.code is not None)
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    # What the interpreter does at exit, short of tearing down its modules: with TensorFlow
    # imported that takes 1.5 s, and has no effect a command could show.
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


if __name__ == "__main__":
    _serve()
