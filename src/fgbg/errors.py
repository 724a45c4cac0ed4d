"""The errors fgbg raises for bad input. Each message names the file or param, what is
wrong and the fix, so the command line shows it without a traceback (see fgbg.cli.run)."""


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
