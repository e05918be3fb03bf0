"""Hydra finds the parts and the experiments through ``framework://`` (framework.config.source),
not in its ConfigStore, and ``--help`` prints what Hydra's own would, without its group listings
where the template leaves them out (framework.cli.help)."""

import contextlib
import io
import subprocess
import sys

import pytest
from hydra._internal.hydra import Hydra
from hydra._internal.utils import get_args_parser
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType

from framework.cli import help as app_help
from framework.config.source import SCHEME, FrameworkConfigSource

from conftest import ROOT

SOURCE = FrameworkConfigSource("framework", f"{SCHEME}://")


def test_parts_and_experiments_stay_out_of_the_config_store():
    # Hydra deep-copies the whole store for every config repository it opens.
    stored = set(ConfigStore.instance().repo)
    for group in (
        "dataset",
        "backbone",
        "head",
        "regularizer",
        "callbacks",
        "experiment",
        "experiment_settings",
    ):
        assert group not in stored
        assert SOURCE.is_group(group)


def test_the_source_lists_parts_and_experiments_but_not_their_internal_settings():
    groups = SOURCE.list("", ObjectType.GROUP)
    assert {"dataset", "backbone", "head", "regularizer", "callbacks", "experiment"} <= set(groups)
    assert "experiment_settings" not in groups  # config.yaml's own: not offered to users
    assert "mlp" in SOURCE.list("backbone", ObjectType.CONFIG)
    assert "iris_binary" in SOURCE.list("experiment", None)
    wine = SOURCE.load_config("experiment/wine")
    assert wine.header["package"] == "_global_" and "backbone" not in wine.config
    settings = SOURCE.load_config("experiment_settings/backbone/wine-mlp")
    assert settings.header["package"] == "backbone" and list(settings.config.units) == [32, 16]
    assert not SOURCE.is_config("experiment_settings/backbone/wine-resmlp")
    assert not SOURCE.is_config("experiment_settings/dataset/None-digits")  # no experiment


def test_a_loaded_config_is_a_copy():
    first = SOURCE.load_config("backbone/mlp").config
    first.units = [1]
    assert list(SOURCE.load_config("backbone/mlp").config.units) == [8, 4]


def test_a_users_file_named_as_a_part_is_merged_into_it_as_hydra_did(tmp_path):
    # Hydra validates a config file against the stored config of the same name: the part's
    # settings stay, the file's override them (with Hydra's deprecation warning).
    (tmp_path / "backbone").mkdir()
    (tmp_path / "backbone" / "mlp.yaml").write_text("units: [3]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "framework",
            "--config-dir",
            str(tmp_path),
            "dataset=wine",
            "--cfg",
            "job",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "backbone:\n  name: mlp\n  units:\n  - 3\n  activation: relu\n" in result.stdout


def shown_help(args: list[str]) -> str:
    """What ``python -m framework *args --help`` prints (without the parts the core picks)."""
    from framework.__main__ import CONFIG_NAME, CONFIG_PATH, run

    GlobalHydra.instance().clear()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            app_help.show_help(
                get_args_parser().parse_args([*args, "--help"]),
                run.__wrapped__,
                CONFIG_PATH,
                CONFIG_NAME,
            )
    finally:
        GlobalHydra.instance().clear()
    return out.getvalue()


@pytest.mark.parametrize(
    "args, shown",
    [
        (["experiment=wine"], "  units:\n  - 32\n  - 16\n"),
        # A template that shows every value Hydra offers, its group listings included.
        (
            [
                "hydra.help.template=$FLAGS_HELP---$APP_CONFIG_GROUPS---$HYDRA_CONFIG_GROUPS---$CONFIG"
            ],
            "hydra/launcher: basic",
        ),
    ],
)
def test_help_is_what_hydra_prints(monkeypatch, args, shown):
    ours = shown_help(args)
    assert shown in ours
    monkeypatch.setattr(app_help, "_LazyHelpHydra", Hydra)  # Hydra's own get_help
    assert ours == shown_help(args)


def test_the_overhead_benchmark_prints_its_table(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "overhead.py"),
            "--cases",
            "help,cfg_job",
            "--repeats",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Median of 1 interleaved run(s) each")
    assert any(line.startswith("--help ") and "< 1.0 s" in line for line in lines)
    assert any(line.startswith("--cfg job ") for line in lines)


def _overhead_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import overhead
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return overhead


def test_the_overhead_benchmark_alternates_sides_and_clocks_fit_where_it_compares(
    monkeypatch, tmp_path
):
    overhead = _overhead_module()
    runs = []
    monkeypatch.setattr(
        overhead,
        "timed",
        lambda command, workdir, clock_fit: (
            runs.append((workdir.name, clock_fit)) or (1.0, 1.0, 0.5)
        ),
    )
    times = overhead.measure(["iris_binary", "help"], 3, tmp_path)
    assert runs == [
        ("iris_binary-framework-0", True),
        ("iris_binary-plain-0", True),
        ("help-framework-0", False),
        ("iris_binary-plain-1", True),
        ("iris_binary-framework-1", True),
        ("help-framework-1", False),
        ("iris_binary-framework-2", True),
        ("iris_binary-plain-2", True),
        ("help-framework-2", False),
    ]
    assert len(times["iris_binary"]["framework"]) == len(times["iris_binary"]["plain"]) == 3


def test_the_overhead_table_shows_the_ratio_of_medians_and_the_range_of_paired_ratios():
    overhead = _overhead_module()
    # (wall, CPU, seconds in fit) of each run
    times = {
        "iris_binary": {
            "framework": [(14.0, 15.0, 10.0), (15.0, 15.5, 10.5), (13.0, 14.0, 9.2)],
            "plain": [(14.5, 15.0, 10.8), (14.0, 15.0, 10.2), (13.5, 14.2, 10.0)],
        }
    }
    lines = overhead.table(times).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("experiment=iris_binary"))
    # medians 14.0 / 14.0; pairs 0.966, 1.071, 0.963; CPU 15.0 / 15.0
    assert lines[at].split() == [
        "experiment=iris_binary",
        "14.00s",
        "14.00s",
        "1.000",
        "0.96-1.07",
        "15.00s",
        "15.00s",
        "1.000",
        "<=",
        "1.05",
        "(ok)",
    ]
    # outside fit: framework 4.0, 4.5, 3.8 (median 4.0), plain 3.7, 3.8, 3.5 (median 3.7);
    # pairs +0.3, +0.7, +0.3: +0.3 s over the plain median of 14.0 s is 1.021
    assert lines[at + 1].split() == [
        "outside",
        "model.fit",
        "4.00s",
        "3.70s",
        "1.021",
        "+0.30",
        "s",
        "<=",
        "1.05",
        "(ok)",
    ]
