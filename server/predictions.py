"""The durable prediction log: a local spool shipped as immutable chunks.

Every scored application is appended, as one JSON line, to the current
segment in a spool folder private to this process. A segment is closed when
it holds ``max_records`` records or is ``max_age_seconds`` old, then gzipped
and shipped to the sink (a directory or an ``s3://`` prefix) under its final,
unique name::

    <prefix>/date=YYYY-MM-DD/<host>-<start>-<seq>.jsonl.gz

``host`` is the host name and process id, ``start`` the writer's start time
(UTC, microseconds) and ``seq`` the segment's number, so replicas and workers
never collide. A chunk that already exists at the sink is never overwritten.
Shipping runs on a background thread; :meth:`PredictionLog.close` (called on
SIGTERM through the server's lifespan) closes and ships the open segment. At
start-up, segments left in the spool by an earlier process are shipped first.
"""

from __future__ import annotations

import gzip
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pydantic_core import to_json

from loanops import storage
from loanops.server.settings import PredictionLogSettings

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".jsonl"
CHUNK_SUFFIX = ".jsonl.gz"


class PredictionLog:
    """Append scored applications to a spool and ship them as chunks."""

    def __init__(self, settings: PredictionLogSettings) -> None:
        self.settings = settings
        self.sink = storage.resolve(settings.uri) if settings.uri else None
        started = datetime.now(UTC)
        self.writer_id = f"{socket.gethostname()}.{os.getpid()}-{started:%Y%m%dT%H%M%S%fZ}"
        self.spool = Path(settings.spool_dir)
        self.spool.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._sequence = 0
        self._segment: IO[bytes] | None = None
        self._segment_path: Path | None = None
        self._segment_records = 0
        self._segment_opened = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._shipper: threading.Thread | None = None
        self.shipped_chunks = 0
        self.ship_failures = 0

    # Writing ---------------------------------------------------------------

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append records to the open segment; they are on disk on return."""
        # pydantic-core writes compact JSON (no spaces, shortest round-trip
        # floats, UTF-8) about ten times faster than the json module; any JSON
        # reader gets the same values back.
        encoded = [to_json(record) for record in records]
        lines = b"\n".join(encoded) + b"\n" if encoded else b""
        with self._lock:
            segment = self._open_segment()
            segment.write(lines)
            # Flushed to the OS before the request is answered: a crash of the
            # process loses nothing acknowledged (a crash of the machine may).
            segment.flush()
            self._segment_records += len(encoded)
            full = self._segment_records >= self.settings.max_records
        if full:
            self.rotate()

    def _open_segment(self) -> IO[bytes]:
        if self._segment is None:
            self._sequence += 1
            day = datetime.now(UTC).strftime("%Y-%m-%d")
            name = f"{day}_{self.writer_id}-{self._sequence:06d}{SEGMENT_SUFFIX}"
            self._segment_path = self.spool / name
            self._segment = self._segment_path.open("xb")
            self._segment_records = 0
            self._segment_opened = time.monotonic()
        return self._segment

    def rotate(self) -> None:
        """Close the open segment (if any) and hand it to the shipper."""
        with self._lock:
            if self._segment is None:
                return
            self._segment.close()
            closed = self._segment_path
            self._segment = None
            self._segment_path = None
        if closed is not None:
            closed.rename(closed.with_suffix(".closed"))
        self._wake.set()

    # Shipping --------------------------------------------------------------

    def chunk_path(self, segment: Path) -> str:
        """Return the sink path of a spooled segment's chunk."""
        assert self.sink is not None
        day, writer = segment.stem.split("_", 1)
        return self.sink.join(f"date={day}", f"{writer}{CHUNK_SUFFIX}")

    def ship_pending(self) -> int:
        """Ship every closed segment in the spool; return how many shipped."""
        if self.sink is None:
            return 0
        shipped = 0
        for segment in sorted(self.spool.glob("*.closed")):
            try:
                self._ship(segment)
                shipped += 1
            except Exception:
                self.ship_failures += 1
                logger.exception(
                    "Could not ship prediction-log segment %s to %s; it stays spooled "
                    "and is retried.",
                    segment.name,
                    self.settings.uri,
                )
        return shipped

    def _ship(self, segment: Path) -> None:
        assert self.sink is not None
        target = self.chunk_path(segment)
        filesystem = self.sink.filesystem
        if filesystem.exists(target):
            # Shipped before a crash, deleted locally only now: never rewrite.
            logger.warning("Chunk %s already exists; dropping its spooled copy.", target)
            segment.unlink()
            return
        payload = gzip.compress(segment.read_bytes())
        parent = target.rsplit("/", 1)[0]
        if not self.sink.is_remote:
            filesystem.makedirs(parent, exist_ok=True)
            # Write beside the target and rename: readers never see half a chunk.
            partial = f"{target}.partial"
            with filesystem.open(partial, "wb") as handle:
                handle.write(payload)
            os.link(partial, target)  # fails if the target appeared meanwhile
            os.unlink(partial)
        else:
            with filesystem.open(target, "wb") as handle:
                handle.write(payload)
        segment.unlink()
        self.shipped_chunks += 1
        logger.debug("Shipped prediction-log chunk %s.", target)

    def _run_shipper(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=min(1.0, self.settings.max_age_seconds))
            self._wake.clear()
            with self._lock:
                aged = (
                    self._segment is not None
                    and self._segment_records > 0
                    and time.monotonic() - self._segment_opened >= self.settings.max_age_seconds
                )
            if aged:
                self.rotate()
            self.ship_pending()

    # Lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Recover segments of earlier processes, then start the shipper."""
        for leftover in sorted(self.spool.glob(f"*{SEGMENT_SUFFIX}")):
            # An open segment of a process that died: close it as it stands.
            leftover.rename(leftover.with_suffix(".closed"))
        recovered = self.ship_pending()
        if recovered:
            logger.info("Shipped %d prediction-log chunk(s) left by an earlier run.", recovered)
        self._shipper = threading.Thread(
            target=self._run_shipper, name="prediction-log", daemon=True
        )
        self._shipper.start()

    def close(self) -> None:
        """Close the open segment and ship everything spooled, synchronously."""
        self._stop.set()
        self._wake.set()
        if self._shipper is not None:
            self._shipper.join(timeout=30)
        self.rotate()
        self.ship_pending()
        logger.info(
            "Prediction log closed: %d chunk(s) shipped in this run, %d left in %s.",
            self.shipped_chunks,
            len(list(self.spool.glob("*.closed"))),
            self.spool,
        )
