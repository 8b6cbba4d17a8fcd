"""The configuration reference, generated from `NodeConfig` itself so it cannot drift from the code:
`swarmnode config reference > docs/CONFIG.md` (a test checks that the committed file is current)."""

from __future__ import annotations

import json
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from swarmnode.config import NodeConfig

HEADER = """# Configuration reference

Generated from `swarmnode/config.py` by `swarmnode config reference`; do not edit by hand (a test checks
that this file matches the code). Every field can be set in a TOML file (`--config FILE.toml`, sections as
tables: `[train]`, `[swarm]`, ...) or on the command line (`--set section.field=VALUE`, the value read as
TOML). `swarmnode config show` prints the resolved configuration.
"""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    text = json.dumps(value, default=str)
    return f"`{text}`"


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for name, symbol in (
            ("ge", ">="),
            ("gt", ">"),
            ("le", "<="),
            ("lt", "<"),
            ("min_length", "length >="),
            ("max_length", "length <="),
        ):
            value = getattr(item, name, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def _type(field: FieldInfo) -> str:
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(annotation))
    text = getattr(annotation, "__name__", None) if get_origin(annotation) is None else None
    return (text or str(annotation)).replace("typing.", "").replace("pathlib.", "").replace("|", "or")


def _variants(field: FieldInfo) -> list[type[BaseModel]]:
    """The sections a field chooses between by their `type` (a discriminated union), else none."""
    options = get_args(field.annotation) if get_origin(field.annotation) in (Union, UnionType) else ()
    if field.discriminator is None or not all(isinstance(o, type) and issubclass(o, BaseModel) for o in options):
        return []
    return list(options)


def _tag(model: type[BaseModel]) -> str:
    return str(model.model_fields["type"].default)


def _rows(model: type[BaseModel], prefix: str) -> tuple[list[str], list[tuple[str, type[BaseModel]]]]:
    rows = []
    sections = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections.append((f"{prefix}{name}", annotation))
            continue
        doc = " ".join((field.description or "").split()).replace("|", "\\|")
        variants = _variants(field)
        if variants:
            kind = "one of " + ", ".join(f"`{_tag(v)}`" for v in variants) + ", or its section"
            default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
            rows.append(f"| `{prefix}{name}` | {kind} | `{json.dumps(_tag(type(default)))}` |  | {doc} |")
            sections += [(f"{prefix}{name}", v) for v in variants]
            continue
        rows.append(f"| `{prefix}{name}` | {_type(field)} | {_default(field)} | {_constraints(field)} | {doc} |")
    return rows, sections


def reference() -> str:
    out = [HEADER]
    queue: list[tuple[str, type[BaseModel]]] = [("", NodeConfig)]
    while queue:
        prefix, model = queue.pop(0)
        rows, sections = _rows(model, f"{prefix}." if prefix else "")
        title = f"`[{prefix}]`" if prefix else "Top level"
        if "type" in model.model_fields:
            title += f" with `type = {json.dumps(_tag(model))}`"
        doc = " ".join((model.__doc__ or "").split()) if prefix else ""
        out.append(f"\n## {title}\n")
        if doc and not doc.startswith("Usage docs") and "BaseModel" not in doc:
            out.append(doc + "\n")
        out.append("| field | type | default | range | meaning |\n| --- | --- | --- | --- | --- |")
        out += rows
        queue += sections
    return "\n".join(out) + "\n"
