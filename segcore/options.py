"""A frozen config dataclass is the single source of a CLI's flags, defaults and `--help`.

    parser = options.Parser(prog="python -m stage", description="...")
    options.add_options(parser, StageConfig, help={"steps": "optimizer steps"})
    cfg = options.config_from_args(StageConfig, parser.parse_args(argv))

Each dataclass field becomes `--field-name`; its type (int, float, str, bool, `X | None`,
`tuple[str, ...]` as a comma list) sets the parser's type and its default is the field's
default, shown in `--help`. A field without a default is a required flag. Help texts come from
the `help` mapping or a field's `metadata["help"]`, so no default is written twice.
`Parser` turns argparse's own errors into `UsageError`: one line on stderr, exit 2
(`segcore.cli.run_cli`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from segcore.cli import UsageError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: a bad flag raises UsageError instead of printing usage."""

    def error(self, message):
        raise UsageError(message)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def comma_list(text: str) -> tuple[str, ...]:
    """'a, b,c' -> ('a', 'b', 'c'); empty items are dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def finite_float(text: str) -> float:
    """A float option that refuses nan and inf (argparse reports the ValueError as one line)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


finite_float.__name__ = "finite float"  # argparse names the type in its message


def _field_kind(annotation: Any) -> tuple[Any, bool]:
    """(base type, optional) of a field annotation such as `int`, `str | None`, `tuple[str, ...]`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported option type {annotation!r}")
        return _field_kind(args[0])[0], True
    return annotation, False


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
    help: Mapping[str, str] | None = None,
    choices: Mapping[str, Iterable[Any]] | None = None,
    required: Iterable[str] = (),
    floats: str = "finite",
) -> None:
    """Add one flag per field of the dataclass `cls` (minus `skip`, or only `only`).

    floats="finite" refuses nan/inf for float fields; "any" accepts them.
    """
    hints = typing.get_type_hints(cls)
    skip, required = set(skip), set(required)
    only = None if only is None else list(only)
    help, choices = dict(help or {}), dict(choices or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = only if only is not None else [n for n in fields if n not in skip]
    unknown = sorted((set(names) | set(help) | set(choices) | required) - set(fields))
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    for name in names:
        f = fields[name]
        base, optional = _field_kind(hints[name])
        text = help.get(name, f.metadata.get("help", ""))
        kwargs: dict[str, Any] = {"dest": name}
        has_default = f.default is not dataclasses.MISSING
        if f.default_factory is not dataclasses.MISSING:
            kwargs["default"], has_default = f.default_factory(), True
        elif has_default:
            kwargs["default"] = f.default
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is tuple:
            kwargs["type"] = comma_list
            if has_default and kwargs["default"] is not None:
                shown = ",".join(map(str, kwargs["default"])) or "none"
                text = f"{text} (comma list; default: {shown})".strip()
                parser.add_argument(flag(name), help=text, **kwargs)
                continue
        elif base is float:
            kwargs["type"] = finite_float if floats == "finite" else float
        elif base in (int, str):
            kwargs["type"] = base
        else:
            raise TypeError(f"{cls.__name__}.{name}: unsupported option type {base!r}")
        if name in choices:
            kwargs["choices"] = tuple(choices[name])
        if not has_default or name in required:
            kwargs["required"] = True
            text = f"{text} (required)".strip()
        else:
            default = kwargs["default"]
            shown = "none" if default is None and optional else "%(default)s"
            text = f"{text} (default: {shown})".strip()
        parser.add_argument(flag(name), help=text, **kwargs)


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build `cls` from the parsed flags that name its fields, then `overrides`.

    A ValueError from the config's own checks becomes a UsageError (one line, exit 2).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    given.update(overrides)
    try:
        return cls(**given)
    except ValueError as err:
        raise UsageError(str(err)) from err
