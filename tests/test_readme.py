"""Every command of README.md, of the pages in docs/ and of the example plugin's README runs as
written, and every relative link of README.md and docs/ resolves.

Commands run in order in one scratch folder (later ones use what earlier ones made, as a reader
would): README.md's, then each docs page's in the order README.md links them. Each ``python -m
framework`` command is shortened with ``trainer.epochs=1`` as docs/development.md says. Left
out: the set-up (``make``, activating the venv), benchmarks, commands that download ImageNet
weights, and the local Ray sweep (test_sweep.py runs it). A transcript's ``error:`` and
``note:`` lines must match exactly (in the order printed: notes on stdout, errors on stderr),
and a transcript that shows an error must exit with code 2; every other command must exit 0.
"""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import warm

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
SHORTEN = "trainer.epochs=1"
SKIP = re.compile(r"^(make |\. \.venv/bin/activate|python benchmarks/)")
# Run by test_sweep.py (test_a_ray_sweep_runs_its_jobs_on_a_local_ray): starting Ray costs a
# minute of the suite's 15 on CI; once is enough.
RUN_ELSEWHERE = re.compile(r"hydra/launcher=ray ")
FENCED = re.compile(r"^```.*?^```", flags=re.S | re.M)
APPLICATIONS = re.compile(r"backbone=(vgg|resnet|inception|xception|mobilenet|densenet|efficient)")


@dataclass
class Command:
    text: str
    # The transcript's lines after the command; None for a command listed without output.
    expected: list[str] | None = None


def readme_commands(markdown: str) -> list[Command]:
    """The commands of a markdown file's ``bash`` blocks and ``$ `` transcripts, in order."""
    commands = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", markdown, flags=re.S | re.M):
        lines = body.splitlines()
        if any(line.startswith("$ ") for line in lines):
            for line in lines:
                if line.startswith("$ "):
                    commands.append(Command(line[2:], []))
                elif commands and commands[-1].expected is not None:
                    commands[-1].expected.append(line)
        elif lang == "bash":
            commands += [Command(line) for line in lines if line.strip()]
    return commands


def without_code(markdown: str) -> str:
    """Markdown text without its fenced blocks and inline code (where nothing is a link)."""
    return re.sub(r"`[^`]*`", "", FENCED.sub("", markdown))


def links(markdown: str) -> list[str]:
    """The targets of a markdown text's links, in order."""
    return re.findall(r"\]\(([^)\s]+)\)", without_code(markdown))


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a markdown text's headings (lower case, punctuation dropped,
    spaces as hyphens)."""
    titles = re.findall(r"^#+ (.+)$", FENCED.sub("", markdown), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") for title in titles}


def linked_pages() -> list[Path]:
    """The docs pages README.md links, in the order it first links them."""
    pages = []
    for target in links(README.read_text()):
        path = (ROOT / target.split("#")[0]).resolve()
        if path.parent == DOCS and path.suffix == ".md" and path not in pages:
            pages.append(path)
    return pages


def needs_network(command: str) -> bool:
    """Whether a command downloads ImageNet weights."""
    if "--help" in command or "--cfg" in command:
        return False
    return "experiment=tl_" in command or (
        APPLICATIONS.search(command) is not None and "weights=null" not in command
    )


def shortened(command: str) -> str:
    """A ``python -m framework`` command with ``trainer.epochs=1`` after its last override
    (Hydra wants its overrides side by side, and the last one wins)."""
    words = shlex.split(command, comments=True)
    if words[:3] != ["python", "-m", "framework"]:
        return command
    overrides = [i for i, w in enumerate(words) if "=" in w and not w.startswith("-")]
    at = overrides[-1] + 1 if overrides else len(words)
    return shlex.join([*words[:at], SHORTEN, *words[at:]])


def run_readme(path: Path, workdir: Path, env: dict, replace: dict | None = None):
    """Runs every command of a markdown page; returns the failures, one message each."""
    failures, ran, name = [], 0, path.relative_to(ROOT)
    for command in readme_commands(path.read_text()):
        text = command.text
        if SKIP.match(text) or needs_network(text) or RUN_ELSEWHERE.search(text):
            continue
        if replace and text.split(" #")[0].strip() in replace:
            replace[text.split(" #")[0].strip()]()
            continue
        result = warm.run_shell(shortened(text), workdir, env, timeout=600)
        ran += 1
        expected = command.expected or []
        wants_error = any(line.startswith("error:") for line in expected)
        code = 2 if wants_error else 0
        if result.returncode != code:
            failures.append(
                f"{name}: {text!r} exited {result.returncode}, not {code}: "
                f"{result.stderr.strip()[-1500:]}"
            )
            continue
        said = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if line.startswith(("error:", "note:"))
        ]
        shown = [line for line in expected if line.startswith(("error:", "note:"))]
        if command.expected is not None and said != shown:
            failures.append(f"{name}: {text!r} printed {said}, the page shows {shown}")
    return failures, ran


def base_env():
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.slow
def test_readme_and_docs_commands_run_as_written(tmp_path):
    failures, ran = [], 0
    for page in [README, *linked_pages()]:
        page_failures, page_ran = run_readme(page, tmp_path, base_env())
        failures += page_failures
        ran += page_ran
    assert ran > 25  # the parser found the pages' commands
    assert not failures, "\n".join(failures)
    # What they wrote, had the reader run them in the repo root, is ignored by git there.
    left = [p.name + "/" if p.is_dir() else p.name for p in tmp_path.iterdir()]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(left),
        capture_output=True,
        text=True,
    ).stdout.split()
    assert sorted(set(left) - set(ignored)) == []


@pytest.mark.slow
def test_example_plugin_readme_runs_as_written(tmp_path):
    site = tmp_path / "site"

    def install():  # pip install ./examples/framework-resmlp, into a folder of its own
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--target",
                str(site),
                str(ROOT / "examples" / "framework-resmlp"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )

    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**base_env(), "PYTHONPATH": str(site), "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "0"}
    failures, ran = run_readme(
        ROOT / "examples" / "framework-resmlp" / "README.md",
        tmp_path,
        env,
        replace={"pip install ./examples/framework-resmlp": install},
    )
    assert ran == 3
    assert not failures, "\n".join(failures)


def test_every_docs_page_is_linked_from_the_readme():
    assert sorted(linked_pages()) == sorted(DOCS.glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_resolve(page):
    broken = []
    for target in links(page.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked.read_text())):
            broken.append(target)
    assert broken == []


def load_figures():
    """docs/figures.py as a module (it is a script, not a package's)."""
    spec = importlib.util.spec_from_file_location("figures", DOCS / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figures_are_rewritten_in_whichever_page_marks_them():
    texts = {
        "README.md": "on <!-- fig:machine -->old<!-- /fig -->\n",
        "docs/errors.md": "<!-- out:errors -->\n```\n$ old\n```\n",
    }
    new = load_figures().rewrite_pages(texts, {"machine": "cpu"}, {"errors": "$ new"})
    assert new == {
        "README.md": "on <!-- fig:machine -->cpu<!-- /fig -->\n",
        "docs/errors.md": "<!-- out:errors -->\n```\n$ new\n```\n",
    }


def test_figures_refuse_a_pasted_block_that_no_page_marks():
    texts = {"README.md": "<!-- out:default_run -->\n```\nold\n```\n"}
    with pytest.raises(SystemExit, match="produces out:errors, which no page marks"):
        load_figures().rewrite_pages(texts, {}, {"default_run": "new", "errors": "$ new"})


@pytest.mark.parametrize(
    "command, network",
    [
        ("python -m framework backbone=mobilenetv2 head=gap_dense", True),
        ("python -m framework backbone=mobilenetv2 head=gap_dense backbone.weights=null", False),
        ("python -m framework backbone=mobilenetv2 --help", False),
        ("python -m framework experiment=tl_resnet50 dataset.path=pets", True),
        ("python -m framework dataset=wine", False),
    ],
)
def test_network_commands_are_recognised(command, network):
    assert needs_network(command) is network


@pytest.mark.parametrize(
    "command, expected",
    [
        ("python -m framework", "python -m framework trainer.epochs=1"),
        (
            "python -m framework backbone=mobilenetv2 --help   # note",
            "python -m framework backbone=mobilenetv2 trainer.epochs=1 --help",
        ),
        (
            "python -m framework -m 'backbone.units=[8,4],[16,8]' seed=1,2",
            "python -m framework -m 'backbone.units=[8,4],[16,8]' seed=1,2 trainer.epochs=1",
        ),
        ("python -m framework.predict run x.png", "python -m framework.predict run x.png"),
    ],
)
def test_training_commands_are_shortened_after_their_last_override(command, expected):
    assert shortened(command) == expected
