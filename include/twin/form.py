"""Airflow trigger-form Params derived from the pydantic model that validates them in the task.

A stage declares each knob once, as a pydantic field with its title, description and bounds; the
DAG file turns `param_schemas(...)` into `Param(schema.pop("default"), **schema)`. The schemas are
plain JSON schema as Airflow's form renders it: a `type` on every field (`[type, "null"]` for an
optional one, never `anyOf`), `enum`, `minimum`/`maximum`, `items` for lists, and no `$ref`.
A field the form may leave empty is nullable with the default None (Airflow's form marks a Param
required unless its type allows null); the task reads None as "the configured value".

The task checks what reached it with the same model in strict mode (`validate_strict`): a value
the form refuses, such as "5" for a number or "false" for a flag, fails the run there too.

Light to import: DAG files call it while the DAG processor parses them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

# Keywords that only document a pydantic model, never a form field.
_DROPPED = frozenset({"$defs", "additionalProperties", "discriminator"})
M = TypeVar("M", bound=BaseModel)


class FormSchemaError(TypeError):
    """A field the trigger form cannot show as one plain input (the message names it)."""


def param_schemas(
    model: type[BaseModel],
    fields: Sequence[str],
    *,
    defaults: Mapping[str, Any] | None = None,
    configured_when_empty: Collection[str] = (),
) -> dict[str, dict[str, Any]]:
    """Each field's Param default and JSON schema (title, description, bounds), in `fields` order.

    `defaults`: the form's value where it deliberately differs from the model's default (or the
    model has none). `configured_when_empty`: fields the form may leave empty because the task
    fills None with a configured value (the platform's author, the configured base model); their
    schema is nullable and their default None.
    """
    full = model.model_json_schema(mode="validation")
    definitions = full.get("$defs", {})
    defaults = dict(defaults or {})
    unknown = sorted((set(defaults) | set(configured_when_empty)) - set(fields))
    missing = [name for name in fields if name not in full["properties"]]
    if unknown or missing:
        raise FormSchemaError(f"{model.__name__}: not form fields {unknown}, not fields {missing}")
    schemas: dict[str, dict[str, Any]] = {}
    for name in fields:
        info = model.model_fields[name]
        where = f"{model.__name__}.{name}"
        if not info.title or not info.description:
            raise FormSchemaError(f"{where}: a form field needs a title and a description")
        schema = plain_schema(full["properties"][name], definitions, where)
        if name in configured_when_empty:
            schema = nullable(schema)
            schema["default"] = None
        if name in defaults:
            schema["default"] = defaults[name]
        if "default" not in schema:
            raise FormSchemaError(f"{model.__name__}.{name}: the form needs a default")
        schemas[name] = {"default": schema.pop("default"), **schema}
    return schemas


def plain_schema(schema: Mapping[str, Any], definitions: Mapping[str, Any], where: str) -> dict:
    """`schema` with `$ref` inlined, `allOf` of one merged and `anyOf` [X, null] made one type."""
    schema = {k: v for k, v in schema.items() if k not in _DROPPED}
    if "$ref" in schema:
        target = definitions[schema.pop("$ref").rsplit("/", 1)[-1]]
        schema = {**plain_schema(target, definitions, where), **schema}
    if "allOf" in schema:
        (only,) = schema.pop("allOf")
        schema = {**plain_schema(only, definitions, where), **schema}
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [plain_schema(b, definitions, where) for b in schema.pop(key)]
            schema = {**_nullable(branches, where), **schema}
    if isinstance(schema.get("items"), Mapping):
        schema["items"] = plain_schema(schema["items"], definitions, where)
    if "type" not in schema and "enum" not in schema and "const" not in schema:
        raise FormSchemaError(f"{where}: no JSON type for the form ({schema})")
    return schema


def nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` that also accepts null (the form's empty field); a no-op when it already does."""
    schema = dict(schema)
    kind = schema.get("type")
    if kind is not None and not (isinstance(kind, list) and "null" in kind):
        schema["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def validate_strict(model: type[M], values: Mapping[str, Any]) -> M:
    """`model` from a run's values in strict mode: no coercion of "5" to 5 or "false" to False,
    as the form's JSON schema allows none (a list still fills a tuple field, as JSON has no
    tuples). Raises pydantic's ValidationError (see `named_problems`)."""
    tuples = {
        name
        for name, info in model.model_fields.items()
        if getattr(info.annotation, "__origin__", None) is tuple
    }
    values = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in values.items()}
    return model.model_validate(values, strict=True)


def _nullable(branches: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """One schema from `[X, {"type": "null"}]`: X's keywords, type `[X's type, "null"]`."""
    values = [b for b in branches if b != {"type": "null"}]
    if len(values) != 1 or len(branches) != 2 or isinstance(values[0].get("type"), list):
        raise FormSchemaError(f"{where}: only `X | None` unions fit one form input")
    merged = dict(values[0])
    merged["type"] = [merged["type"], "null"]
    if "enum" in merged and None not in merged["enum"]:
        merged["enum"] = [*merged["enum"], None]
    return merged


def named_problems(error: ValidationError) -> str:
    """Each problem of a validation error as `Param name=value: why`, joined by "; "."""
    return "; ".join(
        f"Param {'.'.join(str(p) for p in e['loc']) or '(all)'}={e.get('input')!r}: {e['msg']}"
        for e in error.errors()
    )
