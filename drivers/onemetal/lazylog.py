"""Log calls that cost nothing until someone listens: logging is imported only when needed.

`import logging` is about a tenth of a remote action's start-up. On a host nothing
configures logging, so its debug and info records go nowhere; only warnings reach
stderr (through logging's last-resort handler). So a record is handed to logging
when logging is already loaded (the CLIs configure it), or when it is a warning
or worse, which then imports it; everything else is dropped without importing it.
"""

from __future__ import annotations

import sys

DEBUG, INFO, WARNING = 10, 20, 30


class Logger:
    """The part of logging.Logger that onemetal calls."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _log(self, level: int, msg: str, args: tuple[object, ...]) -> None:
        if level >= WARNING or "logging" in sys.modules:
            import logging

            logging.getLogger(self.name).log(level, msg, *args)

    def debug(self, msg: str, *args: object) -> None:
        self._log(DEBUG, msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._log(INFO, msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._log(WARNING, msg, args)


def getLogger(name: str) -> Logger:  # noqa: N802 - logging's name, so call sites read the same
    return Logger(name)
