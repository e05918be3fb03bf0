"""Bad input: one line on stderr naming the bad value, exit code 2, no traceback, no run that
looks finished."""

import pytest

from conftest import assert_one_line_error


def finished_runs(root):
    return list(root.rglob("metrics.json"))


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("backbone=nope", ["'nope'", "accepted: ", "mlp", "simple_cnn"]),
        ("dataset=imagenet_full", ["'imagenet_full'", "iris", "wine"]),
        ("experiment=nope", ["'nope'", "iris_binary"]),
        ("regularizer=[dropout,nope]", ["'nope'", "dropout", "l2"]),
        ("callbacks=[nope]", ["'nope'", "early_stopping"]),
        ("trainer.epochz=3", ["epochz"]),
        ("trainer.epochs=abc", ["'abc'", "trainer.epochs"]),
        ("experiment=iris_binary backbone.units=[8,x]", ["'x'", "backbone.units"]),
    ],
)
def test_a_bad_override_is_refused_in_one_line_before_a_run_dir(cli, tmp_path, override, fragments):
    result = cli(*override.split())
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "outputs").exists()  # refused before any run dir exists


def write_csv(path, rows):
    path.write_text("\n".join(",".join(map(str, row)) for row in rows) + "\n")


@pytest.mark.parametrize("case", ["missing_file", "missing_target", "one_class", "bad_value"])
def test_a_bad_csv_is_refused_in_one_line_and_its_run_marked_failed(cli, tmp_path, case):
    csv = tmp_path / "data.csv"
    header = ["a", "b", "label"]
    body = [[i, i * 2, "x" if i % 2 else "y"] for i in range(20)]
    target, fragments = "label", []
    if case == "missing_file":
        csv = tmp_path / "nope.csv"
        fragments = ["nope.csv", "not found"]
    elif case == "missing_target":
        target, fragments = "species", ["'species'", "a, b, label"]
    elif case == "one_class":
        body = [[i, i, "x"] for i in range(20)]
        fragments = ["1 class", "'label'"]
    else:
        body[3][1] = "oops"
        fragments = ["'b'", "'oops'", "line 5"]
    if case != "missing_file":
        write_csv(csv, [header, *body])
    result = cli(
        "dataset=csv",
        "backbone=mlp",
        "head=dense",
        f"dataset.path={csv}",
        f"dataset.target={target}",
        "hydra.run.dir=run",
    )
    assert_one_line_error(result, *fragments)
    assert "Traceback" not in result.stdout + result.stderr
    assert not finished_runs(tmp_path)
    assert (tmp_path / "run" / "FAILED").exists()


@pytest.mark.slow
def test_an_unknown_optimizer_or_activation_is_refused_in_one_line(cli, tmp_path):
    assert_one_line_error(cli("optimizer.name=adamx"), "'adamx'", "adam, adamw, rmsprop, sgd")
    assert_one_line_error(cli("backbone.activation=relux", "trainer.epochs=1"), "'relux'", "relu")
    assert_one_line_error(cli("experiment=iris_binary", "backbone.activation=relux"), "'relux'")
    assert not finished_runs(tmp_path)


def files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_finished_run_is_never_overwritten(cli, tmp_path):
    args = ["experiment=iris_binary", "trainer.epochs=1", "trainer.verbose=0", "hydra.run.dir=run"]
    assert cli(*args).returncode == 0
    before = files(tmp_path / "run")
    # However the run dir is set: on the command line, through an environment variable, in the
    # user's own experiment; the resolved directory is checked before Hydra writes anything.
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - iris_binary\nhydra:\n  run:\n    dir: run\n"
    )
    for again, message in [
        (cli(*args[:-1], "hydra.run.dir=run"), "already holds a finished run"),
        (cli(*args[:-1], "++hydra.run.dir=run"), "already holds a finished run"),
        (
            cli(*args[:-1], "hydra.run.dir=${oc.env:RUN_DIR}", env={"RUN_DIR": "run"}),
            "already holds a finished run",
        ),
        (
            cli("--config-dir", "conf", "experiment=mine", "trainer.epochs=1"),
            "already holds a finished run",
        ),
        # Hydra's own refusal: the key exists, and a + adds a new one.
        (cli(*args[:-1], "+hydra.run.dir=run"), "An item is already at 'hydra.run.dir'"),
    ]:
        assert_one_line_error(again, message)
        assert files(tmp_path / "run") == before  # Hydra's own .hydra/ files included


@pytest.mark.slow
def test_a_finished_sweep_is_never_written_into_again(cli, tmp_path):
    args = [
        "-m",
        "experiment=iris_binary",
        "trainer.epochs=1",
        "trainer.verbose=0",
        "seed=1",
        "hydra.sweep.dir=sweep",
    ]
    assert cli(*args).returncode == 0
    before = files(tmp_path / "sweep")
    for sweep_dir in (
        "hydra.sweep.dir=sweep",
        "++hydra.sweep.dir=sweep",
        "hydra.sweep.dir=${oc.env:SWEEP_DIR}",
    ):
        again = cli(*args[:-1], sweep_dir, env={"SWEEP_DIR": "sweep"})
        assert_one_line_error(
            again,
            "already holds a sweep",
            "repeat a grid sweep's command "
            "with hydra/sweeper=resume to run only its failed and unfinished "
            "jobs",
        )
        assert files(tmp_path / "sweep") == before  # multirun.yaml and summary.csv included


@pytest.mark.parametrize(
    "run_dir, message",
    [
        ("a_file", "is a file, not a directory"),
        ("a_file/run", "Not a directory"),
    ],
)
def test_a_run_dir_that_cannot_be_written_is_refused_before_anything_runs(
    cli, tmp_path, run_dir, message
):
    (tmp_path / "a_file").write_text("mine")
    result = cli("experiment=iris_binary", f"hydra.run.dir={run_dir}")
    assert_one_line_error(result, f"hydra.run.dir={run_dir}", message)
    assert (tmp_path / "a_file").read_text() == "mine"


def test_a_read_only_outputs_dir_is_refused_in_one_line(cli, tmp_path):
    import os

    if os.geteuid() == 0:  # root writes through permissions: use a place no one may write
        outputs = "/sys/framework-test-outputs"
    else:
        (tmp_path / "outputs").mkdir(mode=0o555)
        outputs = "outputs"
    result = cli("experiment=iris_binary", f"hydra.run.dir={outputs}/run")
    assert_one_line_error(result, "cannot write into", f"{outputs}/run")


@pytest.mark.parametrize(
    "args, message",
    [
        (["backbone=nope"], "backbone/nope"),  # composition
        (["dataset=csv", "dataset.path=nope.csv", "dataset.target=x"], "CSV file not found"),  # run
    ],
)
def test_hydra_full_error_shows_the_traceback_of_every_error(cli, args, message):
    result = cli(*args, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr and message in result.stderr
