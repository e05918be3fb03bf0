"""metrics.json: one writer, one reader, one error path for a file that cannot be read."""

import dataclasses
import json

import pytest

from framework.errors import UserError
from framework.run.record import RunRecord, read_record, write_record
from framework.sweeps.resume import finished_job
from framework.sweeps.summary import collect_jobs

RECORD = RunRecord(
    test={"loss": 0.4, "accuracy": 0.8},
    evaluated_on="test",
    validation={"loss": 0.5, "accuracy": 0.75},
    stages=[{"name": "fit", "validation": {"loss": 0.5, "accuracy": 0.75}}],
    epochs=2,
    model={"name": "mlp", "params": 10},
    data={"name": "iris", "task": "binary", "classes": ["a", "b"]},
    seed=42,
    devices={"keras": ["cpu:0"], "cuda_visible_devices": None},
    execution={"backend": "tensorflow", "precision": "float32", "distribution": None},
    objective={"name": "val_accuracy", "value": 0.75, "direction": "max"},
)


def test_a_record_is_written_in_its_order_and_read_back(tmp_path):
    write_record(tmp_path, RECORD)
    text = (tmp_path / "metrics.json").read_text()
    assert list(json.loads(text)) == ["test", "evaluated_on", "validation", "stages", "epochs"] + [
        "model",
        "data",
        "seed",
        "devices",
        "execution",
        "objective",
    ]
    assert text.endswith("}\n") and text.startswith('{\n  "test": {\n    "loss": 0.4,')
    assert read_record(tmp_path) == RECORD
    assert read_record(tmp_path / "elsewhere") is None  # no record: not finished


def test_class_weights_are_recorded_last_and_only_where_set(tmp_path):
    weighted = dataclasses.replace(RECORD, class_weight={"a": 0.75, "b": 1.5})
    write_record(tmp_path, weighted)
    found = json.loads((tmp_path / "metrics.json").read_text())
    assert list(found)[-2:] == ["objective", "class_weight"]
    assert found["class_weight"] == {"a": 0.75, "b": 1.5}
    assert read_record(tmp_path) == weighted
    assert "class_weight" not in RECORD.as_dict()  # a default run's file is as before


def test_an_older_record_without_an_objective_ranks_by_validation_accuracy(tmp_path):
    older = {k: v for k, v in RECORD.as_dict().items() if k not in ("objective", "devices")}
    (tmp_path / "metrics.json").write_text(json.dumps(older))
    record = read_record(tmp_path)
    assert record.objective == {"name": "val_accuracy", "value": 0.75, "direction": "max"}
    assert record.devices is None


@pytest.mark.parametrize(
    "text, why",
    [
        ('{"test": {', "not valid JSON"),
        ("[1, 2]", "not a run's record"),
        ('{"test": {}}', "it has no valid evaluated_on"),
        (json.dumps({**RECORD.as_dict(), "data": None}), "it has no valid data"),
        (json.dumps({**RECORD.as_dict(), "objective": {"value": 1}}), "it has no valid objective"),
    ],
)
def test_a_damaged_record_is_one_error_that_names_it(tmp_path, text, why):
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(UserError, match=f"metrics.json in {tmp_path} is damaged \\({why}"):
        read_record(tmp_path)


def test_a_resumed_sweep_and_the_summary_say_a_jobs_record_is_damaged(tmp_path):
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (tmp_path / "0" / ".hydra" / "hydra.yaml").write_text("hydra: {job: {num: 0}}\n")
    (tmp_path / "0" / "metrics.json").write_text('{"test": ')  # cut short
    with pytest.raises(UserError, match="metrics.json in .*0 is damaged \\(not valid JSON\\)"):
        finished_job(tmp_path / "0", ["seed=1"], 0)
    [job] = collect_jobs(tmp_path)
    assert job["status"].startswith(f"metrics.json in {tmp_path / '0'} is damaged (not valid")
