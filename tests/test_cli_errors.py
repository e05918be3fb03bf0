"""Bad input: one line on stderr naming the bad value, exit code 2, no traceback, no run that
looks finished."""

import pytest


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def finished_runs(root):
    return list(root.rglob("metrics.json"))


@pytest.mark.parametrize("override, fragments", [
    ("backbone=nope", ["'nope'", "accepted: ", "mlp", "simple_cnn"]),
    ("dataset=imagenet_full", ["'imagenet_full'", "iris", "wine"]),
    ("experiment=nope", ["'nope'", "iris_binary"]),
    ("regularizer=[dropout,nope]", ["'nope'", "dropout", "l2"]),
    ("callbacks=[nope]", ["'nope'", "early_stopping"]),
    ("trainer.epochz=3", ["epochz"]),
    ("trainer.epochs=abc", ["'abc'", "trainer.epochs"]),
    ("experiment=iris_binary backbone.units=[8,x]", ["'x'", "backbone.units"]),
])
def test_composition_errors(cli, tmp_path, override, fragments):
    result = cli(*override.split())
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "outputs").exists()  # refused before any run dir exists


def write_csv(path, rows):
    path.write_text("\n".join(",".join(map(str, row)) for row in rows) + "\n")


@pytest.mark.parametrize("case", ["missing_file", "missing_target", "one_class", "bad_value"])
def test_csv_errors(cli, tmp_path, case):
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
    result = cli("dataset=csv", "backbone=mlp", "head=dense", f"dataset.path={csv}", f"dataset.target={target}",
                 "hydra.run.dir=run")
    assert_one_line_error(result, *fragments)
    assert "Traceback" not in result.stdout + result.stderr
    assert not finished_runs(tmp_path)
    assert (tmp_path / "run" / "FAILED").exists()


def test_unknown_optimizer_and_activation(cli, tmp_path):
    assert_one_line_error(cli("optimizer.name=adamx"), "'adamx'", "adam, adamw, rmsprop, sgd")
    assert_one_line_error(cli("backbone.activation=relux", "trainer.epochs=1"), "'relux'", "relu")
    assert_one_line_error(cli("experiment=iris_binary", "backbone.activation=relux"), "'relux'")
    assert not finished_runs(tmp_path)


def test_a_finished_run_is_never_overwritten(cli, tmp_path):
    args = ["experiment=iris_binary", "trainer.epochs=1", "trainer.verbose=0", "hydra.run.dir=run"]
    assert cli(*args).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    for run_dir in ("hydra.run.dir=run", "++hydra.run.dir=run", "+hydra.run.dir=run"):
        again = cli(*args[:-1], run_dir)
        assert_one_line_error(again, "already holds a finished run")
        after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
        assert after == before  # Hydra's own .hydra/ files included


@pytest.mark.parametrize("args, message", [
    (["backbone=nope"], "backbone/nope"),                                       # composition
    (["dataset=csv", "dataset.path=nope.csv", "dataset.target=x"], "CSV file not found"),  # run
])
def test_hydra_full_error_shows_the_traceback_of_every_error(cli, args, message):
    result = cli(*args, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr and message in result.stderr
