"""One-line descriptions of configuration errors (YAML syntax, pydantic validation).

Every config file a person writes (camera YAML, NODE.yaml) reports its first problem as one
line, ``<file>: <field>: <what is allowed>``, never pydantic's multi-line text or a YAML
parser's caret drawing.
"""

from __future__ import annotations

import yaml
from pydantic import ValidationError


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``not valid YAML at line L, column C: <problem>`` (the parser's own words, one line)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def dotted(loc: tuple[int | str, ...], skip: frozenset[str] = frozenset()) -> str:
    """A pydantic error location as the user wrote it: ``cameras[0].inline.fps``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in skip:
            continue  # a union tag pydantic adds to the path; the user never wrote it
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def validation_problem(
    exc: ValidationError, skip: frozenset[str] = frozenset(), docs: str = "docs/edge.md"
) -> tuple[str, str]:
    """(field, problem) of the first error, with a count of the others."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = dotted(tuple(first["loc"]), skip)
    problem = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        problem = f"unknown key (check the spelling; see {docs} for the fields)"
    elif first["type"] == "missing":
        problem = "required"
    more = len(errors) - 1
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return field, problem
