"""A part's settings as a user reads them: name, type, default and the comment above it in the
config dataclass (``python -m framework.plugins NAME``)."""

import dataclasses
import inspect
import io
import tokenize
import typing
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from framework.parts import kinds
from framework.parts.ranges import as_typed
from framework.parts.registry import Part, config_node


@dataclass
class Setting:
    """One key of a part's config.

    Args:
        name: the key.
        type: its type as written in the config dataclass, or the default's type for a dict.
        default: the default value, as YAML would show it.
        comment: the comment written above the field, as one line ("" if none).
    """

    name: str
    type: str
    default: str
    comment: str


def part_settings(part: Part) -> list[Setting]:
    """The settings of a part, in the order of its config."""
    node = config_node(part)
    cls = part.config if isinstance(part.config, type) else type(part.config)
    is_dataclass = dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls) if is_dataclass else {}
    comments = field_comments(cls) if is_dataclass else {}
    settings = []
    for key in node:
        if key == "name":
            continue
        value = OmegaConf.to_container(node, resolve=False)[key]
        kind = hints.get(key, type(value))
        settings.append(Setting(key, _type_name(kind), as_typed(value), comments.get(key, "")))
    return settings


def describe_part(part: Part) -> str:
    """A part as text: what it is, what it takes and gives, and each setting."""
    lines = [f"{part.group} {part.name} (plugin {part.provider}): {part.description}".rstrip()]
    io_words = []
    if part.takes:
        io_words.append(f"takes {kinds.describe(part.takes)}")
    if part.gives:
        io_words.append(f"gives {kinds.describe(part.gives)}")
    if io_words:
        lines.append(", ".join(io_words).capitalize())
    settings = part_settings(part)
    prefix = (
        f"{part.group}.{part.name}" if part.group in ("regularizer", "callbacks") else (part.group)
    )
    lines.append(f"Settings ({prefix}.<key>=value):" if settings else "No settings.")
    for s in settings:
        lines.append(f"  {s.name}: {s.type} = {s.default}")
        if s.comment:
            lines.append(f"      {s.comment}")
    return "\n".join(lines)


def field_comments(cls) -> dict[str, str]:
    """The comment lines written just above each field of a dataclass and its bases, joined."""
    comments = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        comments.update(_comments_above_fields(source))
    return comments


def _comments_above_fields(source: str) -> dict[str, str]:
    found, pending = {}, []
    tokens = tokenize.generate_tokens(io.StringIO(inspect.cleandoc(source)).readline)
    line_start = True
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            if line_start:
                pending.append(tok.string.lstrip("#").strip())
        elif tok.type == tokenize.NAME and line_start and tok.start[1] > 0:
            if pending:
                found[tok.string] = " ".join(pending)
            pending = []
            line_start = False
        elif tok.type in (tokenize.NEWLINE, tokenize.NL):
            line_start = True
        elif tok.type not in (tokenize.INDENT, tokenize.DEDENT):
            if line_start:
                pending = []
            line_start = False
    return found


def _type_name(kind: Any) -> str:
    if isinstance(kind, type) and not typing.get_args(kind):
        return kind.__name__
    return str(kind).replace("typing.", "").replace("NoneType", "None")
