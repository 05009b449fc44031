"""What the command line prints as one ``error:`` line instead of a traceback."""

from __future__ import annotations

from ..backend import DeviceError


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# Errors a user can cause and fix; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (CLIError, DeviceError, ImportError, FileNotFoundError, ValueError, KeyError, OSError)
