"""The typed errors raised when bytes from the wire do not match the contract.

    ContractError (ValueError)
    ├── TopicError              the topic does not parse as guanjia/v1/{site}/{device}/{channel}
    ├── PayloadTooLargeError    payload larger than the channel allows
    ├── MalformedJSONError      not UTF-8, not JSON (or nested too deeply), or not a JSON object
    ├── SchemaVersionError      `schema` missing, or not the one this receiver speaks
    └── MessageFieldError       a field-level problem; `field` names the dotted path
        ├── UnknownFieldError   a field the schema does not define (extra="forbid")
        ├── MissingFieldError   a required field is absent
        └── InvalidFieldError   a field is present with a bad value

Every error's message names the problem so a dead-letter row or a CommandResult can carry
`str(err)` as its reason.
"""

from __future__ import annotations


class ContractError(ValueError):
    """Base of every contract violation."""


class TopicError(ContractError):
    """A topic that does not parse, or a segment that may not appear in one."""


class PayloadTooLargeError(ContractError):
    """A payload above the channel's size limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload is {size} bytes, the limit is {limit} bytes")
        self.size = size
        self.limit = limit


class MalformedJSONError(ContractError):
    """Bytes that are not a UTF-8 JSON object."""


class SchemaVersionError(ContractError):
    """The `schema` field is missing or names a schema this receiver does not speak."""

    def __init__(self, expected: str, got: object) -> None:
        got_text = "missing" if got is None else repr(got)
        super().__init__(f"schema {got_text}; expected {expected!r}")
        self.expected = expected
        self.got = got


class MessageFieldError(ContractError):
    """A problem with one field; `field` is its dotted path (e.g. ``boxes.0.score``)."""

    kind = "invalid"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{self.kind} field {field!r}: {detail}")
        self.field = field
        self.detail = detail


class UnknownFieldError(MessageFieldError):
    """A field the message schema does not define."""

    kind = "unknown"


class MissingFieldError(MessageFieldError):
    """A required field that is absent."""

    kind = "missing"


class InvalidFieldError(MessageFieldError):
    """A field whose value fails validation."""

    kind = "invalid"
