"""The errors fgbg raises for bad input, and `run`, which every entry point goes through.

Each message names the file or param, what is wrong and the fix, so `run` shows it as one
`error:` line without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable


class FgbgError(Exception):
    """A problem with the user's params, files or arguments."""


class ConfigError(FgbgError, ValueError):
    """A params value is missing, unknown, mistyped or out of range."""


class SourceError(FgbgError, ValueError):
    """One or more source files are missing or unusable; the message lists each."""


class InputError(FgbgError, ValueError):
    """A dataset, checkpoint or image given to a command cannot be used."""


class ChoiceError(FgbgError, KeyError):
    """An unknown name for a registry choice (model, loss, optimizer, scheduler)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


# Errors whose message already names the file or key and the fix: shown without a traceback.
USER_ERRORS = (FgbgError, FileNotFoundError, FloatingPointError)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run `main` with logging set up; a user error exits 2 with its message, no traceback."""
    setup_logging()
    try:
        main(argv)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
