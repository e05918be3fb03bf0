"""Options a user can discover: a part's settings with types, defaults and comments, and help
texts that say where to look."""

import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from framework.parts.registry import REGISTRIES
from framework.parts.settings import describe_part, part_settings

from test_cli_errors import assert_one_line_error


@dataclass
class Base:
    # Shared by subclasses.
    seed: int = 1


@dataclass
class Documented(Base):
    # How wide,
    # in units.
    width: int = 32
    sizes: list[int] = field(default_factory=lambda: [2, 3])
    # Left empty to mean the default.
    path: str | None = None


def test_settings_carry_their_type_default_and_the_comment_above_them(isolated_registries):
    part = isolated_registries["backbone"].register(
        "documented", print, Documented(), "A documented part.", provider="test"
    )
    rows = {s.name: (s.type, s.default, s.comment) for s in part_settings(part)}
    assert rows == {
        "seed": ("int", "1", "Shared by subclasses."),
        "width": ("int", "32", "How wide, in units."),
        "sizes": ("list[int]", "[2,3]", ""),
        "path": ("str | None", "null", "Left empty to mean the default."),
    }
    text = describe_part(part)
    assert text.splitlines()[:2] == [
        "backbone documented (plugin test): A documented part.",
        "Settings (backbone.<key>=value):",
    ]
    assert "  width: int = 32\n      How wide, in units." in text


def test_every_built_in_part_describes_itself():
    for registry in REGISTRIES.values():
        for part in registry:
            text = describe_part(part)
            assert text.startswith(f"{part.group} {part.name} (plugin {part.provider})")


def run_plugins(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "framework.plugins", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plugins_command_shows_one_part(tmp_path):
    result = run_plugins("simple_cnn", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Takes images, gives feature maps" in result.stdout
    assert "  input_size: list[int] = [32,32]\n      [height, width] of the images" in (
        result.stdout
    )
    in_group = run_plugins("regularizer", "augment", cwd=tmp_path)
    assert "Settings (regularizer.augment.<key>=value):" in in_group.stdout
    assert_one_line_error(
        run_plugins("simple_cnnn", cwd=tmp_path), "unknown part 'simple_cnnn'; known: augment"
    )
    assert_one_line_error(run_plugins("head", "mlp", cwd=tmp_path), "unknown head 'mlp'")


def test_help_says_how_to_see_a_part_and_lists_only_user_groups(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "framework", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "python -m framework.plugins NAME" in result.stdout
    assert "python -m framework backbone=mobilenetv2 --help" in result.stdout
    groups = [
        line.split(":")[0]
        for line in result.stdout.split("== Config ==")[0].splitlines()
        if ": " in line and not line.startswith(("framework", "One", "The", "Every"))
    ]
    assert groups == [
        "backbone",
        "callbacks",
        "dataset",
        "experiment",
        "head",
        "optimizer",
        "protocol",
        "regularizer",
        "task",
        "tracker",
        "trainer",
    ]


@pytest.mark.parametrize("module", ["framework.predict", "framework.export"])
def test_tool_help_is_plain_text(tmp_path, module):
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert "``" not in result.stdout and "--output" in result.stdout
