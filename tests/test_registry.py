from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf, ValidationError

from framework.config.source import SCHEME, FrameworkConfigSource
from framework.errors import PluginError, UnknownPartError
from framework.parts.registry import REGISTRIES, Registry


@dataclass
class WidthConfig:
    width: int = 4
    sizes: list[int] = field(default_factory=lambda: [1, 2])


def build(cfg):
    """Builds a thing.

    More text that is not the description.
    """
    return cfg.width


@pytest.fixture
def reg(isolated_registries):
    return Registry("widget")


def test_registered_parts_are_listed_by_name_and_build(reg):
    reg.register("beta", build, WidthConfig(), provider="p1")
    reg.register("alpha", "math:sqrt", {"x": 1}, "Square root.", provider="p2")
    assert reg.names() == ["alpha", "beta"]
    assert reg.names("b*") == ["beta"]
    assert reg.get("beta").description == "Builds a thing."
    assert reg.get("beta").build(OmegaConf.create({"width": 7})) == 7
    assert reg.get("alpha").build(16) == 4.0  # lazy "module:function" builder
    assert "alpha" in reg and len(reg) == 2


def test_duplicate_name_names_both_plugins(reg):
    reg.register("same", build, provider="first_plugin")
    with pytest.raises(PluginError, match="first_plugin.*second_plugin"):
        reg.register("same", build, provider="second_plugin")


def test_unknown_name_lists_known_names_and_suggests(reg):
    reg.register("resnet50", build, provider="p")
    reg.register("vgg16", build, provider="p")
    with pytest.raises(UnknownPartError) as info:
        reg.get("resnet5")
    message = str(info.value)
    assert "'resnet5'" in message and "resnet50, vgg16" in message
    assert "Did you mean 'resnet50'?" in message
    assert isinstance(info.value, KeyError)


def test_invalid_names_and_configs_are_refused(reg):
    with pytest.raises(PluginError, match="invalid name"):
        reg.register("not-an-identifier", build, provider="p")
    with pytest.raises(PluginError, match="may not define 'name'"):
        reg.register("x", build, {"name": "y"}, provider="p")
    with pytest.raises(PluginError, match="dataclass or a dict"):
        reg.register("z", build, 42, provider="p")


def loaded(config_path):
    """What Hydra loads for a config path from the parts' config source."""
    return FrameworkConfigSource("framework", f"{SCHEME}://").load_config(config_path)


def test_config_is_stored_typed_with_its_name(reg, monkeypatch):
    monkeypatch.setitem(REGISTRIES, "widget", reg)
    reg.register("wide", build, WidthConfig(width=9), provider="p")
    stored = loaded("widget/wide.yaml")
    assert stored.provider == "p"
    node = stored.config
    assert node.name == "wide" and node.width == 9 and node.sizes == [1, 2]
    with pytest.raises(ValidationError):
        node.width = "not a number"


def test_list_groups_store_each_part_under_its_own_key(isolated_registries, monkeypatch):
    reg = Registry("gadgets", multiple=True)
    monkeypatch.setitem(REGISTRIES, "gadgets", reg)
    reg.register("one", build, provider="p")
    assert loaded("gadgets/one.yaml").header["package"] == "gadgets.one"
