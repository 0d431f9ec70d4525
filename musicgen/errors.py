"""Exception types. The CLI maps ``UsageError`` to exit 2 and ``MusicgenError`` to exit 1, one line each."""


class MusicgenError(Exception):
    """A runtime failure the user can act on (exit code 1)."""

    exit_code = 1


class UsageError(MusicgenError):
    """Bad arguments or inputs: a missing path, a value out of range (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError, ValueError):
    """A config field has an invalid value; the message names the field and the value received."""


class IngestError(MusicgenError):
    """One file could not be turned into tokens. Reported in the manifest and skipped, never fatal to a run."""


class BundleError(UsageError):
    """A model bundle is missing a part, is inconsistent, or is unsafe to load (exit code 2: fix the path or bundle)."""
