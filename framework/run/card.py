"""A finished run's model card, ``model_card.md``: its data, model, training, scores, protocol,
machine and the command that runs it again.

It is rendered from the run dir's own files only: the record (``metrics.json``), the config and
command-line overrides Hydra kept (``.hydra/``), the epochs of each stage (``history.csv``) and a
search's best trial (``best_overrides.yaml``); so ``python -m framework.card`` writes the same
card again from them. What a file does not hold (an older run's machine) reads "not recorded".
"""

import copy
import csv
import json
import shlex
import sys
from pathlib import Path

import yaml

from framework.errors import UserError, damaged
from framework.run.record import RunRecord
from framework.run.rundir import HISTORY, write_atomic

CARD = "model_card.md"
NOT_RECORDED = "not recorded"
SPLITS = ("train", "validation", "test")
# metrics.json's data block: the names of the targets, under the key their task writes.
TARGET_KEYS = {"classes": "Classes", "targets": "Targets", "labels": "Labels"}
# Data keys with rows of their own (or none); the block's other plain values follow them.
DATA_SHOWN = {"name", "task", "task_name", "path", "samples", "features", "image_size"}


def write_card(run_dir: Path, record: RunRecord):
    """Writes ``model_card.md`` into a run dir, whole or not at all.

    Args:
        run_dir: the run dir, holding what Hydra and the run wrote before the record.
        record: the run's record, as ``metrics.json`` holds (or is about to hold) it.
    """
    run_dir = Path(run_dir)
    write_atomic(run_dir / CARD, render_card(run_dir, record))


def write_run_card(run_dir: Path, record: RunRecord):
    """``write_card`` as a run writes its dir: a card that cannot be written (a plugin's data
    block of unexpected types) costs a warning, never the trained run."""
    try:
        write_card(run_dir, record)
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(
            f"warning: {CARD} not written ({type(e).__name__}: {detail}); "
            f"python -m framework.card {run_dir} writes it",
            file=sys.stderr,
        )


def render_card(run_dir: Path, record: RunRecord) -> str:
    """The model card's markdown text (``write_card``'s arguments)."""
    run_dir = Path(run_dir)
    metrics = json.loads(json.dumps(record.as_dict()))  # exactly as read back from the file
    best = _read_yaml(run_dir, "best_overrides.yaml")  # a search's
    config = _trained_config(_read_yaml(run_dir, ".hydra/config.yaml"), best)
    model, data = metrics["model"], metrics["data"]
    lines = [
        f"# Model card: {run_dir.resolve().name}",
        "",
        f"{model['name']}, a {data['task']} model of the dataset {data['name']}; written from "
        "the run dir's own files (`python -m framework.card RUN` writes it again).",
        *_section("Data", _data_rows(data)),
        *_class_counts(data),
        *_section("Model", _model_rows(model, config)),
        *_section("Training", _training_rows(metrics, config)),
        *_stages(metrics["stages"], _stage_epochs(run_dir / HISTORY)),
        *_scores(metrics),
        *_protocol(metrics),
        *_section("Machine and libraries", _machine_rows(metrics)),
        *_reproduce(_read_yaml(run_dir, ".hydra/overrides.yaml"), best),
    ]
    return "\n".join(lines) + "\n"


def _read_yaml(run_dir: Path, name: str):
    """A YAML file's content; None where the run dir has no such file.

    Raises:
        UserError: the file cannot be read, or is not YAML.
    """
    path = run_dir / name
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise damaged(run_dir, name, "not valid YAML") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None


def _cell(value) -> str:
    """A value as a table cell shows it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(map(_cell, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items()) or "none"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(_cell, row)) + " |" for row in rows),
    ]


def _section(title: str, rows: list[list]) -> list[str]:
    """A section of rows of a name and a value."""
    return ["", f"## {title}", "", *_table(["", ""], rows)]


def _data_rows(data: dict) -> list[list]:
    task = f"{data['task_name']} ({data['task']})" if "task_name" in data else data["task"]
    rows = [["Dataset", data["name"]], ["Task", task]]
    if "path" in data:
        rows.append(["Path", data["path"]])
    rows += [
        [f"{title} ({len(data[key])})", data[key]]
        for key, title in TARGET_KEYS.items()
        if isinstance(data.get(key), list)
    ]
    sizes = ", ".join(f"{s} {data[s]:,}" for s in SPLITS if isinstance(data.get(s), int))
    if "samples" in data:
        sizes += f" (of {data['samples']:,} samples)"
    rows.append(["Split sizes", sizes or NOT_RECORDED])
    if isinstance(data.get("features"), list):
        rows.append([f"Features ({len(data['features'])})", data["features"]])
    if "image_size" in data:
        rows.append(["Image size", " × ".join(map(str, data["image_size"]))])
    shown = DATA_SHOWN | set(TARGET_KEYS) | set(SPLITS)
    return rows + [
        [key, value]
        for key, value in data.items()
        if key not in shown and isinstance(value, (str, int, float, bool))
    ]


def _class_counts(data: dict) -> list[str]:
    """Each split's examples of each class, where the dataset counted them."""
    counts = data.get("class_counts")
    if not isinstance(counts, dict) or not counts:
        return []
    splits = list(counts)
    names = list(counts[splits[0]])
    rows = [[name, *(counts[s].get(name) for s in splits)] for name in names]
    return ["", "Examples per class:", "", *_table(["Class", *splits], rows)]


def _described(name, settings) -> str:
    """A part and its settings, e.g. ``mlp (units [8, 4], activation relu)``."""
    shown = ", ".join(
        f"{k} {v if isinstance(v, str) else json.dumps(v)}"
        for k, v in (settings or {}).items()
        if k != "name"
    )
    return f"{name} ({shown})" if shown else str(name)


def _model_rows(model: dict, config: dict | None) -> list[list]:
    shape = model.get("input_shape")
    rows = [
        ["Model", model["name"]],
        ["Parameters", model["params"]],
        ["Input shape", " × ".join(map(str, shape)) if shape is not None else NOT_RECORDED],
    ]
    for group, title in (("backbone", "Backbone"), ("head", "Head")):
        part = config.get(group) if config is not None else None
        rows.append([title, _described(part.get("name"), part) if part else NOT_RECORDED])
    for group, title in (("regularizer", "Regularizers"), ("callbacks", "Callbacks")):
        chosen = config.get(group) if config is not None else None
        if not isinstance(chosen, dict):
            rows.append([title, NOT_RECORDED])
            continue
        parts = [_described(name, settings) for name, settings in chosen.items()]
        rows.append([title, "; ".join(parts) or "none"])
    return rows


def _trained_config(config: dict | None, best) -> dict | None:
    """The config the run trained: a search's, with its best trial's settings
    (``best_overrides.yaml``), as its retraining took them."""
    if config is None or not isinstance(best, dict) or not isinstance(best.get("settings"), dict):
        return config
    config = copy.deepcopy(config)
    for dotted, value in best["settings"].items():
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break
        else:
            node[last] = value
    return config


def _training_rows(metrics: dict, config: dict | None) -> list[list]:
    objective = metrics["objective"]
    value = _cell(objective["value"])
    if "std" in objective:
        value += f" ± {_cell(objective['std'])} (mean ± std of the models)"
    batch_size = NOT_RECORDED
    if config is not None:
        batch_size = (config.get("dataset") or {}).get("batch_size") or config["trainer"].get(
            "batch_size"
        )
    rows = [
        ["Epochs", f"{metrics['epochs']} (all stages)"],
        ["Batch size", batch_size],
        ["Seed", metrics["seed"]],
        ["Objective", f"{objective['name']} ({objective['direction']}imize): {value}"],
        ["Class weights", metrics.get("class_weight") or "none (unweighted)"],
    ]
    pruned = metrics.get("pruned")
    if pruned:
        rows.append(
            ["Pruned", f"stopped by the {pruned['by']} pruner after epoch {pruned['epoch']}"]
        )
    return rows


def _stage_epochs(history: Path) -> dict | None:
    """The epochs each stage trained, by stage name, from the history; None without one."""
    if not history.is_file():
        return None
    epochs = {}
    with open(history, newline="") as f:
        for row in csv.DictReader(f):
            epochs[row.get("stage")] = epochs.get(row.get("stage"), 0) + 1
    return epochs


def _trainable(trainable) -> str:
    if isinstance(trainable, dict) and len(trainable) == 1:
        ((key, value),) = trainable.items()
        return (
            f"the head and the backbone's last {value} layers"
            if key == "last"
            else (f"the head and the backbone from layer {value}")
        )
    return {"all": "everything", "head": "the head"}.get(trainable, str(trainable))


def _stages(stages: list, epochs: dict | None) -> list[str]:
    rows = []
    for stage in stages:
        optimizer = dict(stage["optimizer"])
        settings = ", ".join(
            f"{k.replace('_', ' ')} {v:g}" for k, v in optimizer.items() if k != "name" and v
        )
        rows.append(
            [
                stage["stage"],
                NOT_RECORDED if epochs is None else epochs.get(stage["stage"], 0),
                _trainable(stage["trainable"]),
                f"{optimizer.get('name')} ({settings})" if settings else optimizer.get("name"),
                stage["cached_features"],
            ]
        )
    header = ["Stage", "Epochs", "Trains", "Optimizer", "On cached features"]
    return ["", "Stages:", "", *_table(header, rows)]


def _scores(metrics: dict) -> list[str]:
    """The final model's scores on validation and on the split it was evaluated on, and that
    split's tables by class or target."""
    on = metrics["evaluated_on"]
    # Without a test split, the final evaluation is of the validation split: a column of its own.
    columns = [metrics["validation"], metrics["test"]]
    header = ["Score", "validation", f"{on} (final evaluation)" if on == "validation" else on]
    names = []
    for scores in columns:
        for key, value in scores.items():
            if isinstance(value, dict) and all(not isinstance(v, dict) for v in value.values()):
                names += [(key, k) for k in value if (key, k) not in names]
            elif not isinstance(value, dict) and (key, None) not in names:
                names.append((key, None))
    rows = [
        [key if sub is None else f"{key} {sub}", *(_lookup(s, key, sub) for s in columns)]
        for key, sub in names
    ]
    lines = ["", "## Scores", "", *_table(header, rows)]
    for key, table in metrics["test"].items():
        if isinstance(table, dict) and table and all(isinstance(v, dict) for v in table.values()):
            inner = list(next(iter(table.values())))
            title = key.replace("_", " ").capitalize()
            lines += ["", f"{title}, on the {on} split:", ""]
            lines += _table(["", *inner], [[name, *v.values()] for name, v in table.items()])
    return lines


def _lookup(scores: dict, key: str, sub: str | None):
    value = scores.get(key)
    return value.get(sub) if sub is not None and isinstance(value, dict) else value


def _protocol(metrics: dict) -> list[str]:
    protocol = metrics.get("protocol")
    lines = ["", "## Protocol", ""]
    if protocol is None:
        splits = "train, validation" + (" and test" if metrics["evaluated_on"] == "test" else "")
        return lines + [f"holdout: one model, on the dataset's own {splits} splits."]
    own = {"name", "refit", "kept", "rounds", "validation"}
    settings = ", ".join(f"{k} {v}" for k, v in protocol.items() if k not in own)
    rounds = protocol["rounds"]
    lines.append(
        f"{protocol['name']} ({settings}): {len(rounds)} models; kept {protocol['kept']}"
        + (", refit on train+validation" if protocol["refit"] else "")
        + f". The objective is {metrics['objective']['name']}."
    )
    keys = [k for k, v in protocol["validation"]["mean"].items()]
    rows = [
        [r["name"], r["seed"], r["epochs"], r["objective"], *(r["validation"].get(k) for k in keys)]
        for r in rounds
    ]
    objective = metrics["objective"]
    for label, value in (("mean", objective["value"]), ("std", objective.get("std"))):
        rows.append([label, "", "", value, *(protocol["validation"][label].get(k) for k in keys)])
    header = ["Round", "Seed", "Epochs", "Objective", *(f"validation {k}" for k in keys)]
    return lines + ["", *_table(header, rows)]


def _machine_rows(metrics: dict) -> list[list]:
    execution, devices = metrics.get("execution"), metrics.get("devices")
    environment = metrics.get("environment") or {}
    rows = []
    if execution is None:
        rows.append(["Backend", NOT_RECORDED])
    else:
        rows += [
            ["Backend", execution.get("backend")],
            ["Precision", execution.get("precision")],
            ["Distribution", execution.get("distribution") or "none"],
        ]
    if devices is None:
        rows.append(["Devices", NOT_RECORDED])
    else:
        rows += [
            ["Devices", devices.get("keras")],
            ["CUDA_VISIBLE_DEVICES", devices.get("cuda_visible_devices") or "not set"],
        ]
    for key, title in (("processor", "Processor"), ("cpus", "CPUs"), ("gpus", "GPUs")):
        rows.append([title, environment.get(key, NOT_RECORDED)])
    for key, title in (("platform", "Platform"), ("python", "Python")):
        rows.append([title, environment.get(key, NOT_RECORDED)])
    libraries = environment.get("libraries")
    rows.append(
        [
            "Libraries",
            ", ".join(f"{k} {v}" for k, v in libraries.items()) if libraries else NOT_RECORDED,
        ]
    )
    return rows


def _reproduce(overrides, best) -> list[str]:
    lines = ["", "## Reproduce", ""]
    if not isinstance(overrides, list):
        return lines + [
            f"{NOT_RECORDED}: the run has no .hydra/overrides.yaml (it was not started by "
            "`python -m framework`)."
        ]
    lines += [
        "From the directory the run was started in (relative paths in it are read from there;",
        "`hydra.run.dir=DIR` chooses where the new run writes):",
        "",
        "```sh",
        f"python -m framework {shlex.join(map(str, overrides))}".rstrip(),
        "```",
    ]
    if isinstance(best, dict) and "command" in best:
        lines += ["", "The best trial of the search alone, without the tuner:", "", "```sh"]
        lines += [best["command"], "```"]
    return lines
