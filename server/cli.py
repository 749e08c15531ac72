"""Glue between ``loanops serve`` and uvicorn.

The model is loaded before uvicorn starts, so a model that cannot be loaded
stops the command with a one-line reason instead of a server that never
turns ready.
"""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from loanops.errors import ConfigurationError
from loanops.server.app import create_app, load_scorer
from loanops.server.settings import PredictionLogSettings, ServerSettings

logger = logging.getLogger(__name__)


def read_token(token_file: Path | None, token: str | None) -> SecretStr | None:
    """Return the API token from a file (a mounted Secret) or a value."""
    if token_file is not None:
        try:
            text = token_file.read_text().strip()
        except OSError as error:
            raise ConfigurationError(
                f"--api-token-file {str(token_file)!r} cannot be read: {error.strerror}."
            ) from None
        if not text:
            raise ConfigurationError(f"--api-token-file {str(token_file)!r} is empty.")
        return SecretStr(text)
    return SecretStr(token) if token else None


def run_server(
    *,
    model_uri: str,
    host: str,
    port: int,
    prediction_log: str | None,
    spool_dir: Path,
    api_token_file: Path | None,
    api_token: str | None,
    max_batch_size: int,
    chunk_records: int,
    chunk_seconds: float,
) -> None:
    """Load the model, then serve it with uvicorn until SIGTERM or Ctrl-C."""
    settings = ServerSettings(
        model_uri=model_uri,
        host=host,
        port=port,
        api_token=read_token(api_token_file, api_token),
        max_batch_size=max_batch_size,
        prediction_log=PredictionLogSettings(
            uri=prediction_log,
            spool_dir=spool_dir,
            max_records=chunk_records,
            max_age_seconds=chunk_seconds,
        ),
    )
    scorer = load_scorer(settings)
    app = create_app(settings, scorer=scorer)
    # One process per container: replicas scale out; the access log is off
    # because metrics count every request and the hot path logs nothing.
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
