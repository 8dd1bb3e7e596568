"""The spec's JSON Schemas, loaded from ``spec/schema/`` into a registry.

The package carries the spec's own schema files (:mod:`.resources`: in the
kit's tree, links to ``spec/schema``), so a change to the spec is checked at
once; ``--spec-dir`` reads another copy. :class:`SpecSchemas` resolves the
``$id``\\ s (``https://pixl-ipc.example/spec/1.1/<file>``) through a
:class:`referencing.Registry`, so that the schemas may ``$ref`` each other.

Kinds: ``request``, ``response``, ``error-response``, ``push``, ``error``,
``message`` (each is ``<kind>.schema.json``).
"""

from __future__ import annotations

import json
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import referencing
import referencing.jsonschema

from . import resources

__all__ = ["KINDS", "SCHEMA_BASE", "SchemaError", "SpecSchemas", "classify"]

#: The base of every schema's ``$id``.
SCHEMA_BASE = "https://pixl-ipc.example/spec/1.1/"
#: The message kinds with a schema of their own.
KINDS = ("request", "response", "error-response", "push", "error", "message")


class SchemaError(RuntimeError):
    """The spec's schemas are missing or unusable; the text says which and where."""


class SpecSchemas:
    """The spec's schemas, ready to validate messages.

    Args:
        spec_dir: a spec directory holding ``schema/`` (or the schema
            directory itself); default: the schemas the package carries.

    Raises:
        SchemaError: a schema file is missing, not JSON, or not a valid schema.
    """

    def __init__(self, spec_dir: Path | str | None = None) -> None:
        schema_dir: Path | Traversable
        if spec_dir is None:
            schema_dir = resources.schema_root()
        else:
            schema_dir = Path(spec_dir) / "schema"
            if not schema_dir.is_dir() and (Path(spec_dir) / "request.schema.json").is_file():
                schema_dir = Path(spec_dir)
        found: list[tuple[str, referencing.Resource[Any]]] = []
        self._schemas: dict[str, dict[str, Any]] = {}
        missing = [k for k in KINDS if not (schema_dir / f"{k}.schema.json").is_file()]
        if missing:
            raise SchemaError(
                f"the spec's schemas are missing in {schema_dir}: "
                + ", ".join(f"{k}.schema.json" for k in missing)
                + " (--spec-dir names a directory holding schema/)"
            )
        files = (p for p in schema_dir.iterdir() if p.is_file() and p.name.endswith(".json"))
        for path in sorted(files, key=lambda p: p.name):
            try:
                contents = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SchemaError(f"cannot read schema {path}: {exc}") from exc
            if not isinstance(contents, dict):
                raise SchemaError(f"schema {path} is not a JSON object")
            uri = contents.get("$id") or SCHEMA_BASE + path.name
            resource = referencing.Resource.from_contents(
                contents, default_specification=referencing.jsonschema.DRAFT202012
            )
            found.append((uri, resource))
            # Also reachable by file name, for schemas that $ref a relative name.
            if uri != SCHEMA_BASE + path.name:
                found.append((SCHEMA_BASE + path.name, resource))
            if path.name.endswith(".schema.json"):
                self._schemas[path.name.removesuffix(".schema.json")] = contents
        self.registry: referencing.Registry[Any] = referencing.Registry().with_resources(found)
        self._validators: dict[str, Any] = {}
        for kind in KINDS:
            schema = self._schemas[kind]
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            try:
                cls.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise SchemaError(f"{kind}.schema.json is not a valid JSON Schema: {exc.message}") from exc
            self._validators[kind] = cls(schema, registry=self.registry)

    def validate(self, message: Any, kind: str) -> list[str]:
        """Check a decoded message against the schema of ``kind``.

        Args:
            message: the decoded JSON value.
            kind: one of :data:`KINDS`.

        Returns:
            One text per violation (``"<kind>: <path>: <problem>"``); empty when valid.

        Raises:
            ValueError: ``kind`` is not one of :data:`KINDS`.
        """
        if kind not in self._validators:
            raise ValueError(f"unknown schema kind {kind!r}; expected one of {KINDS}")
        validator = self._validators[kind]
        try:
            if validator.is_valid(message):
                return []
        except referencing.exceptions.Unresolvable as exc:
            return [f"{kind}: the schema has an unresolvable $ref: {exc}"]
        problems = []
        try:
            errors = sorted(validator.iter_errors(message), key=lambda e: list(e.absolute_path))
        except referencing.exceptions.Unresolvable as exc:
            return [f"{kind}: the schema has an unresolvable $ref: {exc}"]
        for error in errors:
            where = "/".join(str(p) for p in error.absolute_path) or "(top)"
            text = error.message
            if len(text) > 200:
                text = text[:200] + "..."
            problems.append(f"{kind}: {where}: {text}")
        return problems

    def validate_with(self, schema: dict[str, Any], instance: Any) -> list[str]:
        """Check a value against an inline schema that may ``$ref`` the spec's schemas.

        Args:
            schema: a JSON Schema (2020-12), e.g. ``{"$ref": SCHEMA_BASE + "info.schema.json"}``.
            instance: the value.

        Returns:
            One text per violation (``"<path>: <problem>"``); empty when valid.
        """
        validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
        try:
            errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        except referencing.exceptions.Unresolvable as exc:
            return [f"the schema has an unresolvable $ref: {exc}"]
        return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message[:200]}" for e in errors]

    def check_server_message(self, message: Any) -> list[str]:
        """Check a message a server sent against the schema of its kind.

        The kind (``response``, ``error-response`` or ``push``) is found by
        :func:`classify`; ``message.schema.json`` accepts whatever one of them
        accepts, so a message valid as its kind is a valid message. A value
        that is not an object is checked against ``message`` for the report.

        Returns:
            One text per violation; empty when valid.
        """
        kind = classify(message)
        return self.validate(message, kind if kind is not None else "message")


def classify(message: Any) -> str | None:
    """The schema kind of a message a server sent (PUSH-1, ERR-2).

    Returns:
        ``"push"`` without an ``ipcReqID`` member, ``"error-response"`` with a
        top-level ``code``, ``"response"`` otherwise; None for a non-object.
    """
    if not isinstance(message, dict):
        return None
    if "ipcReqID" not in message:
        return "push"
    if "code" in message:
        return "error-response"
    return "response"
