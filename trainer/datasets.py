"""Loading labelled loan applications, validating them and splitting them.

``load_dataset`` reads one file or every file under a folder or S3 prefix (CSV
or Parquet) into one frame. ``validate`` checks each row against the shared
schema and drops the ones that break it, counting every reason, so that a
messy file trains on its good rows and says what it left out. ``split``
makes the three disjoint, stratified parts the trainer needs: train (tuning
and refit), calibration (calibrator and threshold) and evaluation (touched
once, at the end).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from loanops import storage
from loanops.errors import DataError, DataSourceError
from loanops.schema import FEATURE_NAMES, FIELDS, TARGET, CategoricalField

logger = logging.getLogger(__name__)

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
REQUIRED_COLUMNS = (*FEATURE_NAMES, TARGET)


@dataclass(slots=True)
class Dataset:
    """Validated applications with their label, and what validation dropped."""

    frame: pd.DataFrame
    uri: str
    files: list[str]
    rows_read: int
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def content_hash(self) -> str:
        """SHA-256 of the validated rows, independent of file names and order of files."""
        hashed = pd.util.hash_pandas_object(self.frame[list(REQUIRED_COLUMNS)], index=False)
        return hashlib.sha256(np.sort(hashed.to_numpy()).tobytes()).hexdigest()

    @property
    def target(self) -> pd.Series[int]:
        """The label: 1 when the loan defaulted."""
        return self.frame[TARGET]


def read_frame(uri: str, *, s3_endpoint: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Read every CSV or Parquet file at ``uri`` into one DataFrame."""
    location = storage.resolve(uri, s3_endpoint=s3_endpoint)
    files = storage.list_files(location, suffixes=SUFFIXES)
    if not files:
        raise DataSourceError(
            f"no CSV or Parquet file found at {uri!r} (looked for names ending in "
            f"{', '.join(SUFFIXES)})."
        )
    frames = []
    for path in files:
        with storage.open_binary(location, path) as handle:
            try:
                if path.endswith((".parquet", ".pq")):
                    frames.append(pd.read_parquet(handle))
                else:
                    gzipped = path.endswith(".gz")
                    frames.append(pd.read_csv(handle, compression="gzip" if gzipped else None))
            except (ValueError, OSError, UnicodeDecodeError) as error:
                first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise DataSourceError(
                    f"{location.uri_of(path)!r} is not a readable CSV or Parquet file: {first_line}"
                ) from None
    return pd.concat(frames, ignore_index=True), [location.uri_of(p) for p in files]


def validate(frame: pd.DataFrame) -> tuple[pd.DataFrame, Counter[str]]:
    """Drop rows that break the schema; return the kept rows and counts per reason.

    A row is counted once, under the first reason found, in schema order.
    """
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(
            f"the data lacks the required column(s) {', '.join(missing)}; "
            f"found: {', '.join(map(str, frame.columns))}."
        )

    data = frame.loc[:, list(REQUIRED_COLUMNS)].copy()
    dropped: Counter[str] = Counter()
    keep = pd.Series(True, index=data.index)

    def reject(mask: pd.Series[bool], reason: str) -> None:
        newly = mask & keep
        if newly.any():
            dropped[reason] += int(newly.sum())
            keep.loc[newly] = False

    for column in REQUIRED_COLUMNS:
        reject(data[column].isna(), f"missing {column}")
    for schema_field in FIELDS:
        values = data[schema_field.name]
        if isinstance(schema_field, CategoricalField):
            text = values.astype("string").str.strip().str.upper()
            data[schema_field.name] = text
            reject(~text.isin(schema_field.categories) & keep, f"unknown {schema_field.name}")
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        reject(numbers.isna(), f"non-numeric {schema_field.name}")
        reject(
            numbers < schema_field.minimum, f"{schema_field.name} below {schema_field.minimum:g}"
        )
        reject(
            numbers > schema_field.maximum, f"{schema_field.name} above {schema_field.maximum:g}"
        )
        if schema_field.integer:
            reject((numbers % 1 != 0) & numbers.notna(), f"non-integer {schema_field.name}")
        data[schema_field.name] = numbers.astype("float64")

    labels = pd.to_numeric(data[TARGET], errors="coerce")
    reject(~labels.isin([0, 1]), f"{TARGET} not 0 or 1")
    data[TARGET] = labels

    # An exact duplicate (the same in every column of the file, not only in
    # the features) is a repeated record: it would leak between the splits.
    reject(
        pd.Series(frame.duplicated(keep="first").to_numpy(), index=data.index), "exact duplicate"
    )

    kept = data.loc[keep].reset_index(drop=True)
    kept[TARGET] = kept[TARGET].astype("int64")
    for schema_field in FIELDS:
        if isinstance(schema_field, CategoricalField):
            kept[schema_field.name] = kept[schema_field.name].astype(str)
    return kept, dropped


def load_dataset(uri: str, *, s3_endpoint: str | None = None, min_rows: int = 200) -> Dataset:
    """Read and validate the labelled applications at ``uri``."""
    raw, files = read_frame(uri, s3_endpoint=s3_endpoint)
    frame, dropped = validate(raw)
    for reason, count in sorted(dropped.items()):
        logger.warning("Dropped %d row(s) of %s: %s.", count, uri, reason)
    if len(frame) < min_rows:
        raise DataError(
            f"only {len(frame)} usable row(s) remain in {uri!r} after validation "
            f"(read {len(raw)}, dropped {sum(dropped.values())}); at least {min_rows} are needed."
        )
    classes = frame[TARGET].value_counts()
    if len(classes) < 2 or int(classes.min()) < 20:
        raise DataError(
            f"{uri!r} holds {dict(classes)} rows per {TARGET} value; each of 0 and 1 needs at "
            "least 20 rows to train and evaluate."
        )
    logger.info(
        "Loaded %d usable row(s) of %d from %d file(s) at %s.",
        len(frame),
        len(raw),
        len(files),
        uri,
    )
    return Dataset(frame=frame, uri=uri, files=files, rows_read=len(raw), dropped=dropped)


@dataclass(frozen=True, slots=True)
class Splits:
    """Disjoint, stratified train / calibration / evaluation parts."""

    train: pd.DataFrame
    calibration: pd.DataFrame
    evaluation: pd.DataFrame


def split(
    frame: pd.DataFrame,
    *,
    seed: int,
    calibration_share: float = 0.15,
    evaluation_share: float = 0.15,
) -> Splits:
    """Split ``frame`` into stratified, disjoint parts, reproducibly for a seed."""
    rest, evaluation = train_test_split(
        frame, test_size=evaluation_share, stratify=frame[TARGET], random_state=seed
    )
    train, calibration = train_test_split(
        rest,
        test_size=calibration_share / (1 - evaluation_share),
        stratify=rest[TARGET],
        random_state=seed + 1,
    )
    return Splits(train=train, calibration=calibration, evaluation=evaluation)
