"""The error types every subsystem raises.

Each error carries the field or object that is wrong, so that the one line an
operator sees (in `onevm show`, or from a CLI) names what to fix.
"""

from __future__ import annotations


class OneMetalError(Exception):
    """Base of every error onemetal reports to a person."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class InputError(OneMetalError):
    """Input from oned or an operator is malformed; nothing was changed."""


class ConfigError(OneMetalError):
    """onemetal.conf holds an unknown key or a value of the wrong type."""


class LockTimeout(OneMetalError):
    """Another action held a host/subsystem lock past our deadline."""


class MissingDependency(OneMetalError):
    """A system package the action needs is not installed on this host."""
