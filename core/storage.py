"""Reading and writing files by URI: local paths, ``file://`` and ``s3://``.

The trainer reads labelled applications here, the server ships prediction-log
chunks here and drift checks read them back. S3 goes through s3fs; the endpoint
may be overridden (MinIO, moto, any S3-compatible store) with
``LOANOPS_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL``. Failures are translated into
:class:`~loanops.errors.DataSourceError` messages that name the URI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from loanops.errors import DataSourceError

_CREDENTIAL_ERROR_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"}
)


@dataclass(frozen=True, slots=True)
class Location:
    """A filesystem and the path on it that a URI names."""

    uri: str
    filesystem: fsspec.AbstractFileSystem
    path: str

    @property
    def is_remote(self) -> bool:
        """Whether the location lives outside this machine."""
        return not isinstance(self.filesystem, LocalFileSystem)

    def join(self, *parts: str) -> str:
        """Return the path of a child of this location."""
        return "/".join([self.path.rstrip("/"), *parts])

    def uri_of(self, path: str) -> str:
        """Return the URI of a path on this location's filesystem."""
        if self.is_remote:
            return f"s3://{path}"
        return path


def resolve(uri: str, *, s3_endpoint: str | None = None) -> Location:
    """Return the filesystem and path for ``uri``.

    ``s3_endpoint`` overrides the S3 endpoint; without it the environment's
    ``LOANOPS_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL`` is used, if set.
    """
    if uri.startswith("s3://"):
        endpoint = (
            s3_endpoint
            or os.environ.get("LOANOPS_S3_ENDPOINT")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        client_kwargs: dict[str, Any] = {"endpoint_url": endpoint} if endpoint else {}
        # A fresh instance per endpoint: fsspec caches filesystems by arguments,
        # and a listing cached across writers would hide new chunks.
        filesystem = fsspec.filesystem(
            "s3", client_kwargs=client_kwargs, skip_instance_cache=True, use_listings_cache=False
        )
        return Location(uri=uri, filesystem=filesystem, path=uri.removeprefix("s3://"))
    if "://" in uri and not uri.startswith("file://"):
        scheme = uri.split("://", 1)[0]
        raise DataSourceError(
            f"URI {uri!r} has the scheme {scheme!r}; accepted are a local path, file:// and s3://."
        )
    path = os.path.abspath(os.path.expanduser(uri.removeprefix("file://")))
    return Location(uri=uri, filesystem=fsspec.filesystem("file"), path=path)


def describe_failure(uri: str, error: BaseException) -> str:
    """Turn an exception raised while reading ``uri`` into a one-line reason."""
    if isinstance(error, FileNotFoundError):
        return f"nothing exists at {uri!r}"
    if isinstance(error, PermissionError) or _is_credential_error(error):
        return f"the credentials were refused for {uri!r} (check the access key and secret)"
    if isinstance(error, IsADirectoryError):
        return f"{uri!r} is a directory, not a file"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{uri!r} could not be read: {text}"


def _is_credential_error(error: BaseException) -> bool:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        return code in _CREDENTIAL_ERROR_CODES
    return any(code in str(error) for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"))


def list_files(location: Location, *, suffixes: tuple[str, ...]) -> list[str]:
    """List the files at ``location`` whose names end with one of ``suffixes``.

    A location that names a file lists itself; one that names a folder or a
    prefix lists every matching file below it, sorted, so that reads are
    reproducible.
    """
    try:
        if location.filesystem.isfile(location.path):
            return [location.path]
        if not location.filesystem.exists(location.path):
            raise FileNotFoundError(location.path)
        found = location.filesystem.find(location.path)
    except Exception as error:
        raise DataSourceError(describe_failure(location.uri, error)) from None
    return sorted(path for path in found if path.endswith(suffixes))


@contextmanager
def open_binary(location: Location, path: str, mode: str = "rb") -> Iterator[IO[bytes]]:
    """Open ``path`` on ``location``'s filesystem, naming the URI on failure."""
    try:
        handle = location.filesystem.open(path, mode)
    except Exception as error:
        raise DataSourceError(describe_failure(location.uri_of(path), error)) from None
    with handle:
        yield handle
