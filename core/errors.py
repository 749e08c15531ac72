"""Errors that loanops reports to its users.

Every error here carries a message meant for the person who ran the command or
sent the request: it names the field, URI or option at fault, shows the value
and says what is accepted. Tracebacks are for ``--debug`` only.

Hierarchy::

    LoanopsError                 base; exit code 2 at the command line
    ├── ConfigurationError       an option or setting that cannot work
    ├── DataError                input data unreadable, malformed or too small
    │   └── DataSourceError      a URI that cannot be listed, opened or read
    ├── RegistryError            MLflow unreachable or missing an expected object
    └── NotSupportedError        a feature loanops does not offer (yet)
"""

from __future__ import annotations


class LoanopsError(Exception):
    """An error whose message is fit to show a user without a traceback."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(LoanopsError):
    """An option or setting holds a value that cannot work."""


class DataError(LoanopsError):
    """The input data is unusable: missing columns, or too few valid rows."""


class DataSourceError(DataError):
    """A data URI cannot be listed, opened or read."""


class RegistryError(LoanopsError):
    """The MLflow tracking server or registry failed or lacks an object."""


class NotSupportedError(LoanopsError):
    """The request asks for something loanops does not support."""
