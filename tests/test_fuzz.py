"""Seeded fuzzing of the command line: override sets drawn over every registered part's config
fields, valid and invalid. Each invocation either runs or stops with one line naming what is
wrong, and never leaves a run dir half-written.

Most draws compose and validate only (what ``python -m framework`` does before any data is
loaded); a few run end to end through the command line.
"""

import functools
import random

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from conftest import assert_one_line_error, compose_config
from framework.cli import one_line
from framework.errors import UserError
from framework.preflight import check_settings
from framework.ranges import field_ranges, value_outside
from framework.registry import REGISTRIES

SEED = 16
COMPOSED_DRAWS = 50
# Values of the wrong type or shape, and text the override grammar refuses unquoted.
JUNK = ["abc", "-1", "0", "1.5", "[]", "[0]", "null", "prix€", "1e9", "true"]
# Datasets that need no files (csv and image_folder get bad paths: refused in one line).
DATASETS = ["iris", "wine", "digits", "shapes", "csv", "image_folder"]


def draw_overrides(rng: random.Random) -> list[str]:
    """One command line: parts, then settings of the composed parts, valid or not."""
    args = [f"dataset={rng.choice(DATASETS)}"]
    if rng.random() < 0.3:
        args.append(f"backbone={rng.choice(REGISTRIES['backbone'].names() + ['nope'])}")
    if rng.random() < 0.3:
        args.append(f"regularizer=[{rng.choice(REGISTRIES['regularizer'].names())}]")
    if rng.random() < 0.2:
        args.append(f"callbacks=[{rng.choice(REGISTRIES['callbacks'].names())}]")
    cfg = _parts_config(tuple(args))
    if cfg is None:
        return args  # the parts alone are refused: that is the draw
    for _ in range(rng.randint(1, 3)):
        args.append(_setting(rng, cfg))
    return args


@functools.cache
def _parts_config(args: tuple):
    try:
        return compose_config(*args)
    except (HydraException, OmegaConfBaseException, UserError):
        return None


def _setting(rng: random.Random, cfg) -> str:
    nodes = ["trainer", "optimizer", "dataset", "backbone", "head"]
    nodes += [f"regularizer.{n}" for n in cfg.regularizer] + [
        f"callbacks.{n}" for n in cfg.callbacks]
    path = rng.choice(nodes)
    node = OmegaConf.select(cfg, path)
    keys = [k for k in node if k != "name" and not OmegaConf.is_dict(node._get_node(k))]
    if not keys or rng.random() < 0.05:
        return rng.choice(["seed=-3", "seed=7", "trainer.bogus=1", "+nope=1"])
    key = rng.choice(keys)
    ranges = field_ranges(OmegaConf.get_type(node))
    default = node._get_node(key)._value()
    roll = rng.random()
    if key in ranges and roll < 0.35:
        value = value_outside(ranges[key], default)
    elif roll < 0.6:
        value = rng.choice(JUNK)
    else:
        value = default
    if isinstance(value, list):
        value = "[" + ",".join(str(v) for v in value) + "]"
    elif value is None:
        value = "null"
    return f"{path}.{key}={value}"


def test_composed_draws_either_pass_the_checks_or_are_refused_in_one_line():
    rng = random.Random(SEED)
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(COMPOSED_DRAWS):
        args = draw_overrides(rng)
        try:
            check_settings(compose_config(*args))
            outcomes["accepted"] += 1
        except (HydraException, OmegaConfBaseException, UserError) as e:
            message = one_line(e)
            assert message and "\n" not in message, (args, message)
            assert any(word in message for word in _words(args)), (args, message)
            outcomes["refused"] += 1
        # Anything else escapes and fails the test: a user would see a traceback.
    print(f"fuzz: {COMPOSED_DRAWS} composed draws, {outcomes}")
    assert outcomes["accepted"] > 10 and outcomes["refused"] > 10  # both sides are exercised


def _words(args: list[str]) -> set[str]:
    """The keys and values of a draw's overrides: a refusal names one of them."""
    words = set()
    for arg in args:
        key, _, value = arg.lstrip("+~").partition("=")
        words |= {key, key.rsplit(".", 1)[-1], value.strip("[]")} - {""}
    return words


RUN_DRAWS = 4


@pytest.mark.parametrize("draw", range(RUN_DRAWS))
def test_run_draws_finish_or_exit_2_in_one_line_without_a_half_written_run(draw, cli, tmp_path):
    rng = random.Random(SEED + 1 + draw)
    args = [f"dataset={rng.choice(['iris', 'wine'])}", "trainer.epochs=1"]
    args.append(_setting(rng, _parts_config(tuple(args))))
    result = cli(*args, "trainer.verbose=0", "hydra.run.dir=run")
    run_dir = tmp_path / "run"
    if result.returncode == 0:
        assert (run_dir / "metrics.json").exists()
    else:
        assert_one_line_error(result)
        # Refused before the run: no directory; refused by the run: marked FAILED.
        assert not run_dir.exists() or (run_dir / "FAILED").exists()
        assert not (run_dir / "metrics.json").exists()
