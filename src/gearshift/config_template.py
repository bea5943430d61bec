"""An annotated ``gearshift.yaml``: the values given, and every other setting as a comment showing
its default, walked from the pydantic declarations in config.py (so a new setting appears here
without anyone remembering to add it).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gearshift.config import Settings

__all__ = ["render_settings"]

_COMMENT_COLUMN = 44
# Example items for lists that are empty by default, so their settings are shown too.
_EXAMPLES: dict[str, dict[str, Any]] = {
    "budgets": {"name": "monthly", "limit_usd": 100},
    "limits": {"name": "per-team", "scope": {"team": "support"}, "rpm": 600, "tpm": 200000},
    "deployments": {"name": "eastus", "base_url": "https://east.example.com/v1", "weight": 1},
}


def render_settings(values: dict[str, Any], header: list[str]) -> str:
    """YAML for ``values`` (a Settings mapping), each setting on its own line with its default
    and description; settings not in ``values`` are commented out at their defaults."""
    lines = [f"# {line}".rstrip() for line in header]
    lines += _fields(Settings, values, indent=0, commented=False, top=True)
    return "\n".join(lines) + "\n"


def _fields(
    cls: type[BaseModel],
    values: dict[str, Any],
    *,
    indent: int,
    commented: bool,
    top: bool = False,
    brief: bool = False,
) -> list[str]:
    """``brief``: only the given values, unannotated (list entries after the first, which
    already showed every setting)."""
    lines: list[str] = []
    for name, field in cls.model_fields.items():
        if brief:
            if name in values:
                lines.append(_line(indent, f"{name}: {_scalar(values[name])}", "", commented))
            continue
        if top and lines:
            lines.append("")  # a blank line between top-level sections
        nested = _model_type(field.annotation)
        item = _list_item_type(field.annotation)
        given = name in values
        value = values[name] if given else _default(field)
        hide = commented or not given
        if item is not None and isinstance(value, list):
            items = value or ([_EXAMPLES[name]] if name in _EXAMPLES else [])
            note = _note(field, given) if given else _note(field, False, "[]")
            lines.append(_line(indent, f"{name}:" if value else f"{name}: []", note, hide))
            if not value and items:
                lines.append(_line(indent, "  # for example:", "", hide))
            for i, entry in enumerate(items):
                lines += _list_entry(
                    item, entry, indent + 2, commented=hide or not value, brief=i > 0
                )
        elif nested is not None and (isinstance(value, dict | BaseModel) or value is None):
            sub = value.model_dump() if isinstance(value, BaseModel) else (value or {})
            shown = _default_text(field) if not given else ""
            lines.append(_line(indent, f"{name}:", _note(field, given, shown), hide))
            lines += _fields(nested, sub if given else {}, indent=indent + 2, commented=hide)
        else:
            lines.append(_line(indent, f"{name}: {_scalar(value)}", _note(field, given), hide))
    return lines


def _list_entry(
    cls: type[BaseModel], entry: dict[str, Any], indent: int, *, commented: bool, brief: bool
) -> list[str]:
    lines = _fields(cls, entry, indent=indent + 2, commented=commented, brief=brief)
    # "- " takes the place of the first line's last two spaces of indentation
    first = lines[0]
    marker = "# " if first.startswith("# ") else ""
    lines[0] = f"{marker}{' ' * indent}- {first[len(marker) :].lstrip()}"
    return lines


def _line(indent: int, text: str, note: str, commented: bool) -> str:
    code = ("# " if commented else "") + " " * indent + text
    if not note:
        return code
    return f"{code.ljust(_COMMENT_COLUMN)}  # {note}"


def _note(field: FieldInfo, given: bool, shown: str | None = None) -> str:
    parts = []
    if given or shown is not None:
        default = shown if shown is not None else _default_text(field)
        if default == "required":
            parts.append("required")
        elif default:
            parts.append(f"default: {default}")
    if field.description:
        parts.append(field.description)
    return "; ".join(parts)


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    default = _default(field)
    if isinstance(default, BaseModel):
        return ""
    return _scalar(default)


def _default(field: FieldInfo) -> Any:
    if field.is_required():
        return "<required>"
    return field.get_default(call_default_factory=True)


def _scalar(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def _model_type(annotation: Any) -> type[BaseModel] | None:
    for kind in (annotation, *_union_members(annotation)):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def _list_item_type(annotation: Any) -> type[BaseModel] | None:
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return _model_type(item)
    return None


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return ()
