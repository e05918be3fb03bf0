"""Before a run: parts picked to fit the dataset, mismatches refused in one line, experiment
settings that stay with their part, and notes on settings that would have no effect."""

import subprocess
import sys

import pytest
from hydra.types import RunMode

from framework.config.preflight import choose_parts, ineffective_settings
from framework.errors import PluginError, UserError
from framework.parts.kinds import FEATURES, IMAGES

from conftest import run_cli, run_importing
from test_cli_errors import assert_one_line_error


@pytest.mark.parametrize(
    "overrides, extra",
    [
        ([], []),  # digits: the defaults fit
        (["dataset=wine"], ["backbone=mlp", "head=dense"]),
        (["dataset=csv"], ["backbone=mlp", "head=dense"]),
        (["dataset=wine", "backbone=mlp"], ["head=dense"]),
        (["dataset=wine", "head=flatten_dense"], ["backbone=mlp"]),
        (["experiment=wine"], []),  # the experiment chose them
        (["backbone=mobilenetv2"], []),  # flatten_dense takes feature maps
        (["-m", "dataset=wine,digits"][1:], []),  # a sweep over datasets: checked per job
    ],
)
def test_unchosen_parts_are_picked_to_fit_the_dataset(overrides, extra):
    picked, notes = choose_parts(overrides)
    assert picked == extra
    assert bool(notes) == bool(extra)
    if extra:
        assert notes[0].startswith("dataset '") and " ".join(extra) in notes[0]


def test_the_composed_config_is_the_one_picked(compose):
    cfg = compose("dataset=wine")
    assert (cfg.backbone.name, cfg.head.name) == ("mlp", "dense")
    assert compose().backbone.name == "simple_cnn"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["head=dense"],
            "head 'dense' takes features, but backbone 'simple_cnn' gives feature maps; "
            "heads that take feature maps: flatten_dense, gap_dense",
        ),
        (
            ["dataset=wine", "head=gap_dense"],
            "head 'gap_dense' takes feature maps, but backbone 'mlp' "
            "gives features; heads that take features: dense, "
            "flatten_dense",
        ),
        (
            ["experiment=wine", "backbone=simple_cnn"],
            "backbone 'simple_cnn' takes images, but "
            "dataset 'wine' gives features; backbones that "
            "take features: mlp",
        ),
        (["dataset=iris", "backbone=mobilenetv2"], "backbone 'mobilenetv2' takes images"),
        (
            ["dataset=wine", "regularizer=[dropout,augment]"],
            "regularizer 'augment' takes images, "
            "but dataset 'wine' gives features; "
            "leave 'augment' out",
        ),
    ],
)
def test_parts_that_cannot_fit_are_refused_by_name(overrides, message):
    with pytest.raises(UserError) as error:
        choose_parts(overrides)
    assert message in str(error.value)


def test_a_mismatch_is_one_line_before_tensorflow_and_nothing_is_written(tmp_path):
    result, imported = run_importing("-m", "framework", "head=dense", cwd=tmp_path)
    assert "hydra" in imported and "tensorflow" not in imported
    assert_one_line_error(result, "head 'dense' takes features")
    assert not (tmp_path / "outputs").exists()


def test_undeclared_parts_are_checked_by_their_shapes_at_run_time(
    isolated_registries, compose, tmp_path
):
    from framework.run.train import train
    from framework_plugins.datasets.tabular import SplitConfig, build_wine

    # A third party's dataset that says nothing of its kind: the data's rank decides.
    isolated_registries["dataset"].register(
        "plain_wine", build_wine, SplitConfig(), provider="test"
    )
    assert choose_parts(["dataset=plain_wine"]) == ([], [])
    cfg = compose("dataset=plain_wine", "trainer.verbose=0")
    with pytest.raises(
        UserError,
        match="backbone 'simple_cnn' takes images, but dataset 'plain_wine' gives features",
    ):
        train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "FAILED").exists()


def test_a_kind_must_be_known(isolated_registries):
    with pytest.raises(PluginError, match="unknown kind 'pictures'; accepted: features, images"):
        isolated_registries["backbone"].register(
            "x", print, None, takes="pictures", provider="test"
        )
    part = isolated_registries["head"].register("y", print, None, takes=FEATURES, provider="t")
    assert part.takes == (FEATURES,) and part.gives is None
    assert (
        isolated_registries["dataset"].register("z", print, None, gives=IMAGES, provider="t").gives
        == IMAGES
    )


def test_an_experiment_takes_another_part_without_its_own_parts_settings(
    isolated_registries, compose
):
    from dataclasses import dataclass

    @dataclass
    class WideConfig:
        width: int = 32

    isolated_registries["backbone"].register(
        "wide", print, WideConfig(), takes=FEATURES, gives=FEATURES, provider="test"
    )
    cfg = compose("experiment=wine", "backbone=wide", "backbone.width=7")
    assert cfg.backbone.name == "wide" and cfg.backbone.width == 7
    assert "units" not in cfg.backbone
    assert (cfg.trainer.epochs, cfg.dataset.name, cfg.head.name) == (50, "wine", "dense")
    _, notes = choose_parts(["experiment=wine", "backbone=wide"])
    assert notes == [
        "experiment 'wine' sets backbone.units for backbone 'mlp'; not applied to backbone 'wide'"
    ]
    # With its own part, the experiment's settings apply, and the command line still wins.
    assert list(compose("experiment=wine").backbone.units) == [32, 16]
    assert list(compose("experiment=wine", "backbone.units=[4]").backbone.units) == [4]


def test_included_experiments_pass_their_part_settings_on(compose):
    assert list(compose("experiment=iris_deep").backbone.units) == [16, 8, 4]
    image_size = compose("experiment=cnn_image_size")
    assert list(image_size.backbone.input_size) == [150, 150]
    assert image_size.dataset.class_mode == "binary"


@pytest.mark.parametrize(
    "experiment, task, mode, expected",
    [
        ("cnn_image_size", [], RunMode.RUN, "this config sweeps backbone.input_size"),
        ("cnn_image_size", [], RunMode.MULTIRUN, None),
        (
            "tl_mobilenetv2_finetune",
            ["trainer.epochs=1"],
            RunMode.RUN,
            "trainer.epochs=1 has no effect: every stage of trainer.stages sets its own epochs",
        ),
        ("tl_mobilenetv2_finetune", [], RunMode.RUN, None),
        ("wine", ["trainer.epochs=1"], RunMode.RUN, None),
    ],
)
def test_settings_without_effect_get_a_note(compose, experiment, task, mode, expected):
    cfg = compose(f"experiment={experiment}", *task)
    params = {"backbone.input_size": "[64,64],[150,150]"} if experiment == "cnn_image_size" else {}
    notes = ineffective_settings(cfg, mode, params, task)
    if expected is None:
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].startswith(expected)


@pytest.mark.parametrize(
    "args",
    [
        ["--cfg", "job", "dataset=wine"],
        ["dataset=wine", "--cfg", "job"],
        ["--config-dir", "{dir}", "experiment=own", "--cfg", "job"],  # a user's own experiment
    ],
)
def test_the_parts_picked_are_in_the_config_shown(tmp_path, args):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "own.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /dataset: iris\n"
    )
    args = [a.format(dir=tmp_path) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "framework", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "backbone:\n  name: mlp" in result.stdout and "head:\n  name: dense" in result.stdout
    assert result.stderr.startswith("note: dataset '")


def test_a_sweep_over_heads_still_gets_the_backbone_that_fits():
    assert choose_parts(["dataset=wine", "head=dense,flatten_dense"]) == (
        ["backbone=mlp"],
        ["dataset 'wine' gives features, so backbone=mlp (choose others with backbone=...)"],
    )


def test_notes_name_the_selected_experiment_once():
    _, notes = choose_parts(["experiment=iris_deep", "dataset=wine"])
    assert notes == [
        "experiment 'iris_deep' sets dataset.target for dataset 'iris'; not applied "
        "to dataset 'wine'"
    ]


def test_users_own_configs_compose_as_before(tmp_path):
    (tmp_path / "backbone").mkdir()
    (tmp_path / "backbone" / "wide_mlp.yaml").write_text("defaults:\n  - mlp\nunits: [64, 64]\n")
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - wine\nbackbone:\n  activation: tanh\n"
    )
    # A user's option that is not a registered part: nothing to check it by, nothing picked.
    assert choose_parts(
        ["dataset=wine", "backbone=wide_mlp", "head=dense"], config_dir=str(tmp_path)
    ) == ([], [])
    # A user's experiment including ours keeps our experiment's part settings, under its own.
    extra, notes = choose_parts(["experiment=mine"], config_dir=str(tmp_path))
    assert extra == ["experiment_settings/backbone@backbone=wine-mlp"] and notes == []
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "framework",
            "--config-dir",
            str(tmp_path),
            "experiment=mine",
            "--cfg",
            "job",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "  units:\n  - 32\n  - 16\n  activation: tanh" in result.stdout, result.stderr


# Runs `python -m framework ARGS`, counting the whole-config settings checks
# (framework.config.preflight.check_settings's check_ranges), and prints the count last.
COUNTING_MAIN = """
import framework.config.preflight as preflight
from framework.__main__ import main
from framework.cli.process_exit import run_and_exit

check_ranges, checks = preflight.check_ranges, []


def counted(cfg, *args, **kwargs):
    checks.append(1)
    return check_ranges(cfg, *args, **kwargs)


def counted_main():
    preflight.check_ranges = counted
    try:
        return main()
    finally:
        print(f"settings checks: {len(checks)}", flush=True)


run_and_exit(counted_main)
"""


@pytest.mark.parametrize(
    "args, checks",
    [
        (["experiment=iris_binary", "trainer.epochs=1"], 1),  # by the run guard, before Hydra
        # One for the command, one per trial; the best trial's retraining is not checked again.
        pytest.param(
            ["experiment=tune_wine_random", "tuner.max_trials=2", "trainer.epochs=1"],
            3,
            marks=pytest.mark.slow,
        ),
    ],
)
def test_a_command_checks_its_settings_once_and_a_search_once_more_per_trial(
    tmp_path, args, checks
):
    (tmp_path / "counting_main.py").write_text(COUNTING_MAIN)
    result = run_cli(
        *args, "trainer.verbose=0", "hydra.run.dir=run", cwd=tmp_path, module="counting_main"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == f"settings checks: {checks}"
