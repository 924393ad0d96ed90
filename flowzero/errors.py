"""One exception hierarchy, caught once at the CLI's edge and shown as a single line with a hint."""

from __future__ import annotations

from flowzero.models import FailureReason

# The exit statuses of the ``flowzero`` command, defined once: the CLI's help is built from them and the tests check
# that docs/cli.md lists the same ones.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "error (or a failed order/file)",
    2: "bad input",
    130: "interrupted",
}


class FlowzeroError(Exception):
    """An error the user can act on: ``message`` says what went wrong, ``hint`` how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(FlowzeroError):
    """The configuration file or a setting is invalid."""


class SettingError(ConfigError):
    """A setting's value is unusable (wrong type, out of range): bad input, fixed by changing it."""

    exit_code = 2


class UsageError(FlowzeroError):
    """A command was given input it cannot use (bad date, missing column, unknown id...)."""

    exit_code = 2


class StorageError(FlowzeroError):
    """The order store cannot be opened or written."""


class PluginError(FlowzeroError):
    """A requested plugin (downloader, provider, storage backend) is not available."""


class AOIError(UsageError):
    """An area of interest cannot be read or is not a valid polygon."""


class PlanetError(FlowzeroError):
    """Planet (or the sandbox) answered with an error or could not be reached."""

    def __init__(self, message: str, hint: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message, hint)
        self.status_code = status_code


class AuthError(PlanetError):
    """The API key is missing or was rejected."""


class TransferError(FlowzeroError):
    """A file could not be downloaded, verified or written; ``reason`` says why as a value (delivery acts on it:
    an expired link is fetched again with fresh links)."""

    default_reason: FailureReason = FailureReason.OTHER

    def __init__(self, message: str, hint: str | None = None, reason: FailureReason | None = None) -> None:
        super().__init__(message, hint)
        self.reason = reason or self.default_reason
