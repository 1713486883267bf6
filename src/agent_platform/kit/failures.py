"""Failures that end a process with a non-zero exit code (kept light: the CLI imports it early)."""


class PlatformPartFailedError(RuntimeError):
    """A part of the platform (api, worker, sandbox) stopped without being asked to."""


class StartupRefusedError(RuntimeError):
    """Starting would harm data or another instance; the message says what to do instead."""
