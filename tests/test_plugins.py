import os
import subprocess
import sys
import types

import pytest

from framework.api import hookimpl
from framework.errors import PluginError
from framework.parts.loading import plugin_listing, register_plugins
from framework.parts.registry import REGISTRIES

from conftest import ROOT, run_cli

NO_AUTOLOAD_OFF = {"FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "0"}


def plugin_module(name, **hooks):
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def test_same_part_from_two_plugins_is_an_error_naming_both(isolated_registries):
    def one(register):
        register("twin", lambda cfg, shape, ctx: None)

    def two(register):
        register("twin", lambda cfg, shape, ctx: None)

    plugins = [
        ("alpha_pkg", plugin_module("a", register_backbones=one)),
        ("beta_pkg", plugin_module("b", register_backbones=two)),
    ]
    with pytest.raises(PluginError, match="backbone 'twin'.*'alpha_pkg' and 'beta_pkg'"):
        register_plugins(plugins)


def test_misspelled_hook_fails_loudly(isolated_registries):
    module = plugin_module("typo", register_backbone=lambda register: None)
    with pytest.raises(PluginError, match="typo_pkg.*register_backbone"):
        register_plugins([("typo_pkg", module)])


def test_registered_part_records_its_provider(isolated_registries):
    def hook(register):
        register("tiny", lambda cfg, ctx: None, description="A tiny dataset.")

    register_plugins([("tiny_pkg", plugin_module("t", register_datasets=hook))])
    part = REGISTRIES["dataset"].get("tiny")
    assert (part.provider, part.description) == ("tiny_pkg", "A tiny dataset.")


def test_listing_shows_every_registry_with_provider_and_description():
    listing = plugin_listing()
    for group, registry in REGISTRIES.items():
        assert f"{group} ({len(registry)}):" in listing
        # Within the group's own lines: two groups may hold parts of one name (csv).
        block = listing.split(f"{group} ({len(registry)}):\n", 1)[1].split("\n\n", 1)[0]
        for part in registry:
            line = next(line for line in block.splitlines() if line.split()[:1] == [part.name])
            assert part.provider in line and part.description in line


@pytest.mark.parametrize("group", list(REGISTRIES))
def test_a_group_name_lists_that_groups_parts(group, capsys):
    from framework.plugins import main

    main([group])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{group} ({len(REGISTRIES[group])}):"
    assert [line.split()[0] for line in out.splitlines()[1:]] == list(REGISTRIES[group].names())


def write_distribution(site, dist, module, source, entry_point_name):
    """A minimal installed distribution: a module plus dist-info with one entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[framework.plugins]\n{entry_point_name} = {module}\n")


def test_plugin_that_fails_to_import_is_named_with_its_entry_point(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_distribution(
        site,
        "broken_dist",
        "broken_plugin_mod",
        "raise ImportError('needs a missing library')\n",
        "broken",
    )
    result = run_cli(
        "dataset=iris",
        cwd=tmp_path,
        module="framework.plugins",
        env={**NO_AUTOLOAD_OFF, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: plugin 'broken' (entry point 'broken_plugin_mod' of broken_dist) failed to "
        "import: ImportError: needs a missing library"
    )


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    """The example third-party package, pip-installed into a directory of its own."""
    site = tmp_path_factory.mktemp("example_site")
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
    return site


def test_example_plugin_is_listed_and_in_help(example_site, tmp_path):
    env = {**NO_AUTOLOAD_OFF, "PYTHONPATH": str(example_site)}
    listing = run_cli(cwd=tmp_path, module="framework.plugins", env=env)
    assert listing.returncode == 0, listing.stderr
    line = next(line for line in listing.stdout.splitlines() if line.split()[:1] == ["resmlp"])
    assert "resmlp" in line.split()[1] and "Residual MLP" in line
    help_text = run_cli("--help", cwd=tmp_path, env=env)
    backbones = next(line for line in help_text.stdout.splitlines() if line.startswith("backbone:"))
    assert "resmlp" in backbones and "mlp" in backbones


@pytest.mark.slow
def test_example_plugin_trains_when_selected_by_name(example_site, tmp_path):
    env = {**NO_AUTOLOAD_OFF, "PYTHONPATH": str(example_site)}
    result = run_cli(
        "dataset=wine",
        "backbone=resmlp",
        "backbone.blocks=1",
        "trainer.epochs=3",
        "trainer.verbose=0",
        "hydra.run.dir=run",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    summary = (tmp_path / "run" / "summary.txt").read_text()
    assert "block1_norm" in summary and "resmlp" in summary
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_example_plugin_passes_its_own_tests_with_the_test_kit(example_site, tmp_path):
    example = ROOT / "examples" / "framework-resmlp"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example / "tests")],
        cwd=example,
        env={**os.environ, **NO_AUTOLOAD_OFF, "PYTHONPATH": str(example_site)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 passed" in result.stdout
