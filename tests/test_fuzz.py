"""Seeded fuzzing of the command line: override sets drawn over every registered part's config
fields, valid and invalid. Each invocation either runs or stops with one line naming what is
wrong, and never leaves a run dir half-written.

Most draws compose and validate only (what ``python -m framework`` does before any data is
loaded); a few run end to end through the command line. Search spaces (``tuner.space``) and the
Optuna sweeper's settings are drawn too.
"""

import copy
import functools
import random

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from framework.cli.messages import one_line
from framework.config.preflight import check_settings
from framework.errors import UserError
from framework.parts.ranges import field_ranges, value_outside
from framework.parts.registry import REGISTRIES

from conftest import assert_one_line_error, compose_config

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
        f"callbacks.{n}" for n in cfg.callbacks
    ]
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


@pytest.mark.slow
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


# tuner.space (a keras-tuner search) and the Optuna sweeper's settings, drawn valid and not over
# the settings' types and declared ranges. Each draw is checked as the command checks it before
# anything is written: refused in one line naming what is wrong, or accepted, and then every
# trial the search or the study samples from it passes the checks its run makes.
SPACE_DRAWS = 40
# Values each setting takes (a draw picks from them, or from anything).
VALID = {
    "trainer.batch_size": [8, 16, 32],
    "trainer.epochs": [1, 2, 3],
    "optimizer.learning_rate": [1e-4, 0.001, 0.01],
    "optimizer.momentum": [0.0, 0.5, 0.9],
    "optimizer.name": ["adam", "sgd"],
    "backbone.units": [[8], [16, 8]],
    "regularizer.dropout.rate": [0.0, 0.2, 0.5],
    "seed": [0, 7],
}
SPACE_KEYS = [*VALID, "optimizer", "backbone.nope"]
NUMBERS = [-1, 0, 1, 2, 5, 16, 0.0, 1e-4, 0.001, 0.5, 1.5]
CHOICES = [*NUMBERS, "abc", "adam", "sgd", [8], [16, 8], True, None]


def draw_space(rng: random.Random) -> dict:
    """A ``tuner.space`` of one or two settings, each ``{kind: values}``."""
    space = {}
    for _ in range(rng.randint(1, 2)):
        key = rng.choice(SPACE_KEYS)
        valid = VALID.get(key) if rng.random() < 0.7 else None
        numbers = valid and all(isinstance(v, (int, float)) for v in valid)
        kind = rng.choice(["choice", "int", "float", "log_float"] if numbers else ["choice"])
        if kind == "int" and not all(isinstance(v, int) for v in valid):
            kind = "float"
        if kind == "log_float" and sum(v > 0 for v in valid) < 2:
            kind = "choice"
        if valid and kind == "choice":
            values = rng.sample(valid, rng.randint(1, len(valid)))
        elif valid:
            values = sorted(rng.sample([v for v in valid if kind != "log_float" or v > 0], 2))
        else:
            kind = rng.choice(["choice", "int", "float", "log_float", "pick"])
            values = (
                [rng.choice(CHOICES) for _ in range(rng.randint(0, 3))]
                if kind in ("choice", "pick")
                else [rng.choice(NUMBERS) for _ in range(rng.choice([1, 2, 2, 3]))]
            )
        space[key] = {kind: values}
    return space


def test_search_space_draws_are_refused_in_one_line_or_give_trials_that_pass_the_checks():
    import keras_tuner

    from framework.config import search_space
    from framework.sweeps.tuner import trial_config

    base = compose_config("experiment=tune_wine_random")
    rng = random.Random(SEED)
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(SPACE_DRAWS):
        space = draw_space(rng)
        cfg = copy.deepcopy(base)
        cfg.tuner.space = space
        try:
            check_settings(cfg)  # as the run guard does, before the run dir is written
        except UserError as e:
            message = one_line(e)
            assert message and "\n" not in message, (space, message)
            assert any(word in message for key in space for word in (key, *key.split("."))), (
                space,
                message,
            )
            outcomes["refused"] += 1
            continue
        outcomes["accepted"] += 1
        # The search's own space (as its oracle declares it), and trials sampled from it.
        hp = keras_tuner.HyperParameters()
        search_space.define(hp, search_space.check_space(cfg.tuner.space, cfg))
        for seed in range(3):
            trial = hp.copy()
            trial.values = {p.name: p.random_sample(seed) for p in hp.space}
            check_settings(trial_config(cfg, search_space.define(trial, space)))
    print(f"fuzz: {SPACE_DRAWS} search space draws, {outcomes}")
    assert outcomes["accepted"] > 5 and outcomes["refused"] > 10


OPTUNA_DRAWS = 30
# Settings of the sweeper: (values it takes, values it does not).
SWEEPER = {
    "n_trials": (["1", "2"], ["-1", "0"]),
    "n_jobs": (["1", "2"], ["0"]),
    "max_failure_rate": (["0", "0.5"], ["-0.5", "2"]),
    "direction": (["minimize", "maximize"], ["sideways", "[maximize,minimize]"]),
}
# Sweeps each setting takes (a draw picks from them, or makes one of anything).
VALID_SWEEPS = {
    "optimizer.learning_rate": [
        "tag(log, interval(1e-4, 1e-2))",
        "choice(0.001, 0.01)",
        "interval(0.001, 0.01)",
    ],
    "trainer.batch_size": ["choice(8, 16)", "range(8, 33, 8)", "interval(8, 32)"],
    "backbone.units": ["choice([8], [16,8])"],
    "regularizer.dropout.rate": ["interval(0.0, 0.5)", "choice(0.0, 0.2)"],
    "optimizer": ["choice(adam, sgd)"],
}
SWEEPS = [
    "interval({a}, {b})",
    "tag(log, interval({a}, {b}))",
    "range({a}, {b})",
    "range({a}, {b}, {c})",
    "choice({a}, {b})",
    "choice({a})",
    "choice()",
]
SWEEP_VALUES = [
    "0",
    "1",
    "2",
    "16",
    "-1",
    "0.5",
    "1e-4",
    "0.01",
    "1.5",
    "abc",
    "adam",
    "sgdd",
    "[8]",
    "[16,8]",
]


def draw_optuna(rng: random.Random, storages: list[str]) -> tuple[list[str], dict]:
    """Overrides of the Optuna sweeper's settings, and its search space (its ``params``)."""
    overrides = []
    for key, (valid, invalid) in {**SWEEPER, "storage": (storages[:1], storages[1:])}.items():
        if rng.random() < 0.3:
            values = valid if rng.random() < 0.6 else invalid
            overrides.append(f"hydra.sweeper.{key}={rng.choice(values)}")
    params = {}
    for _ in range(rng.randint(1, 2)):
        if rng.random() < 0.7:
            key = rng.choice(list(VALID_SWEEPS))
            params[key] = rng.choice(VALID_SWEEPS[key])
        else:
            a, b, c = (rng.choice(SWEEP_VALUES) for _ in range(3))
            key = rng.choice([*VALID_SWEEPS, "optimizer.nope"])
            params[key] = rng.choice(SWEEPS).format(a=a, b=b, c=c)
    return overrides, params


@pytest.mark.slow
def test_optuna_sweeper_draws_are_refused_in_one_line_without_a_write_or_give_valid_trials(
    tmp_path,
):
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import (
        OptunaSweeperImpl,
        create_params_from_overrides,
    )

    from framework.config.optuna import check_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep_dir = tmp_path / "sweep"
    (tmp_path / "junk.db").write_text("not a database")
    optuna.create_study(
        study_name="search_wine_optuna",
        direction="maximize",
        storage=f"sqlite:///{tmp_path / 'made.db'}",
    )
    storages = [f"sqlite:///{tmp_path / name}" for name in ("made.db", "junk.db", "no/x.db")]
    files = {p: p.read_bytes() for p in tmp_path.iterdir()}
    rng = random.Random(SEED)
    base = ["experiment=search_wine_optuna", f"hydra.sweep.dir={sweep_dir}"]
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(OPTUNA_DRAWS):
        overrides, params = draw_optuna(rng, storages)
        try:
            cfg = compose_config(*base, *overrides, return_hydra_config=True)
            with read_write(cfg.hydra.sweeper):
                cfg.hydra.sweeper.params = params
            task_cfg = copy.deepcopy(cfg)
            with read_write(task_cfg), open_dict(task_cfg):
                del task_cfg["hydra"]
            check_study(cfg, task_cfg, sweep_dir)  # as the run guard does, before make_dir
        except (HydraException, OmegaConfBaseException, UserError) as e:
            message = one_line(e)
            assert message and "\n" not in message, (overrides, params, message)
            assert any(
                word in message
                for word in _words([*overrides, *(f"{k}={v}" for k, v in params.items())])
                | {"optuna.db"}
            ), (overrides, params, message)
            outcomes["refused"] += 1
            # Nothing written: no sweep dir, the storage files as they were.
            assert not sweep_dir.exists()
            assert {p: p.read_bytes() for p in tmp_path.iterdir()} == files
            continue
        outcomes["accepted"] += 1
        # The plugin's own search space and trials; each trial's job config passes its checks.
        sweeper = cfg.hydra.sweeper
        distributions, fixed = create_params_from_overrides([f"{k}={v}" for k, v in params.items()])
        study = optuna.create_study(direction=sweeper.direction)
        impl = OptunaSweeperImpl(
            None, sweeper.direction, None, None, sweeper.n_trials, 1, 0.0, None, None, None
        )
        for trial_overrides in impl._configure_trials(
            [study.ask() for _ in range(2)], distributions, fixed
        ):
            check_settings(compose_config(*base, *overrides, *trial_overrides))
    print(f"fuzz: {OPTUNA_DRAWS} Optuna sweeper draws, {outcomes}")
    assert outcomes["accepted"] > 3 and outcomes["refused"] > 10
