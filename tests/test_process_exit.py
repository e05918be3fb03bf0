"""framework.cli.process_exit: a command ends as the interpreter would end it, without the teardown
of its modules (each case in a fresh interpreter of its own)."""

import subprocess
import sys
import textwrap

# A command whose module holds a file it never flushed: only the teardown of the modules, which
# closes it, writes its text.
COMMAND = """
import atexit, sys, threading, time
from pathlib import Path
from framework.cli.process_exit import run_and_exit

left_open = open("teardown.txt", "w")
left_open.write("closed by the teardown")

def main():
    atexit.register(lambda: print("atexit ran"))
    def late():
        time.sleep(0.3)
        Path("thread.txt").write_text("joined")
    threading.Thread(target=late).start()
    print("output", end="")  # no newline: sits in the buffer of a pipe
    {body}

{call}
"""


def _run(tmp_path, body="return 3", call="run_and_exit(main)"):
    script = textwrap.dedent(COMMAND).format(body=body, call=call)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def test_the_status_output_threads_and_atexit_handlers_are_those_of_a_normal_exit(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 3
    assert done.stdout == "outputatexit ran\n"  # flushed
    assert (tmp_path / "thread.txt").read_text() == "joined"
    assert (tmp_path / "teardown.txt").read_text() == ""  # the teardown was skipped


def test_sys_exit_inside_the_command_gives_its_status_or_message(tmp_path):
    assert _run(tmp_path, body="sys.exit(2)").returncode == 2
    assert _run(tmp_path, body="return None").returncode == 0
    done = _run(tmp_path, body="sys.exit('error: bad value')")
    assert (done.returncode, done.stderr) == (1, "error: bad value\n")


def test_an_unexpected_error_exits_as_usual_with_its_traceback(tmp_path):
    done = _run(tmp_path, body="raise RuntimeError('a bug')")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "RuntimeError: a bug" in done.stderr
    assert (tmp_path / "teardown.txt").read_text() == "closed by the teardown"


def test_under_a_tracer_the_process_exits_as_usual(tmp_path):
    # Coverage, debuggers and profilers write their results after the command returns.
    done = _run(tmp_path, call="sys.settrace(lambda *args: None)\nrun_and_exit(main)")
    assert done.returncode == 3
    assert done.stdout == "outputatexit ran\n"
    assert (tmp_path / "teardown.txt").read_text() == "closed by the teardown"
