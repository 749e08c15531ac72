"""The drift check: recent prediction requests against the training reference.

Reads the prediction-log chunks of a time window (a directory or an ``s3://``
prefix laid out as ``date=YYYY-MM-DD/*.jsonl.gz``), loads the reference
profile stored with the model version that served them, and tests each field:

- PSI over the profile's bins, open at both ends, so values outside anything
  seen in training still count (for categorical fields, over the categories);
- KS against the profile's sample, for numeric fields;
- chi-square against the profile's shares, for categorical fields;
- the same PSI and KS for the predicted P(default).

A field drifts only when its test is significant after a Bonferroni
correction for the number of tests *and* its PSI reaches the effect-size
threshold: with thousands of rows a p-value alone flags shifts too small to
matter. Fewer rows than the minimum is its own outcome, ``insufficient_data``,
never drift; a failure raises and is never read as drift.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from loanops import storage
from loanops.errors import DataError
from loanops.profile import NumericProfile, ReferenceProfile, bin_counts
from loanops.schema import CATEGORICAL_FIELDS, NUMERIC_FIELDS

logger = logging.getLogger(__name__)

Verdict = Literal["drift", "no_drift", "insufficient_data"]

# Shares below this count as this much, so an empty bin gives a large but
# finite PSI term instead of an infinite one.
PSI_FLOOR = 1e-4


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    """When a field counts as drifted."""

    psi: float = 0.2
    alpha: float = 0.01
    min_samples: int = 200


@dataclass(slots=True)
class FieldResult:
    """The tests of one field (or of the predicted P(default))."""

    field: str
    kind: str
    psi: float
    test: str
    statistic: float
    p_value: float
    drifted: bool


@dataclass(slots=True)
class DriftReport:
    """The outcome of one check, written as JSON."""

    verdict: Verdict
    samples: int
    reference_rows: int
    model_name: str | None
    model_versions: list[str]
    window_start: str | None
    window_end: str | None
    thresholds: dict[str, float]
    corrected_alpha: float
    drifted_fields: list[str] = field(default_factory=list)
    fields: list[FieldResult] = field(default_factory=list)

    def to_json(self) -> str:
        """Serialise the report as indented JSON."""
        return json.dumps(asdict(self), indent=2)

    def summary(self) -> str:
        """A one-line summary, short enough for a termination message."""
        if self.verdict == "insufficient_data":
            return f"insufficient_data: {self.samples} samples"
        drifted = ",".join(self.drifted_fields) or "-"
        return f"{self.verdict}: {self.samples} samples; drifted: {drifted}"

    def termination_message(self) -> str:
        """The verdict, counts and per-field PSI as compact JSON (well under 4 KiB).

        A Job's termination message is how the operator learns the result
        without reading logs or the full report.
        """
        message = {
            "verdict": self.verdict,
            "samples": self.samples,
            "versions": self.model_versions,
            "drifted": self.drifted_fields,
            "psi": {result.field: round(result.psi, 4) for result in self.fields},
            "summary": self.summary(),
        }
        return json.dumps(message, separators=(",", ":"))

    def title(self) -> str:
        """The summary with the model and versions checked, for people."""
        versions = ", ".join(self.model_versions) or "none"
        return f"{self.model_name or 'model'} version(s) {versions}: {self.summary()}"


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(profile: NumericProfile, values: npt.ArrayLike) -> float:
    """PSI of ``values`` against a numeric profile's open-ended bins."""
    counts = bin_counts(profile.edges, values)
    return psi(profile.shares, counts / max(int(counts.sum()), 1))


def _numeric_result(
    name: str, kind: str, profile: NumericProfile, values: npt.NDArray[np.float64], alpha: float,
    thresholds: DriftThresholds,
) -> FieldResult:  # fmt: skip
    index = numeric_psi(profile, values)
    test = stats.ks_2samp(values, np.asarray(profile.sample))
    p_value = float(test.pvalue)
    return FieldResult(
        field=name,
        kind=kind,
        psi=index,
        test="ks",
        statistic=float(test.statistic),
        p_value=p_value,
        drifted=p_value < alpha and index >= thresholds.psi,
    )


def _categorical_result(
    name: str, shares: dict[str, float], values: list[str], alpha: float,
    thresholds: DriftThresholds,
) -> FieldResult:  # fmt: skip
    categories = list(shares)
    counts = np.asarray([sum(1 for v in values if v == c) for c in categories], dtype=np.float64)
    observed_shares = counts / max(counts.sum(), 1)
    index = psi([shares[c] for c in categories], observed_shares)
    # Chi-square needs expected counts of a few rows per cell: categories rarer
    # than that (OTHER home ownership, 0.15 %) are pooled into one cell.
    expected = np.asarray([shares[c] for c in categories]) * counts.sum()
    common = expected >= 5
    observed_cells = [*counts[common], counts[~common].sum()]
    expected_cells = [*expected[common], expected[~common].sum()]
    if expected_cells[-1] == 0:
        observed_cells, expected_cells = observed_cells[:-1], expected_cells[:-1]
    expected_array = np.asarray(expected_cells)
    expected_array = expected_array * (sum(observed_cells) / expected_array.sum())
    test = stats.chisquare(observed_cells, expected_array)
    p_value = float(test.pvalue)
    return FieldResult(
        field=name,
        kind="categorical",
        psi=index,
        test="chi_square",
        statistic=float(test.statistic),
        p_value=p_value,
        drifted=p_value < alpha and index >= thresholds.psi,
    )


def check_drift(
    records: list[dict[str, Any]],
    profile: ReferenceProfile,
    thresholds: DriftThresholds = DriftThresholds(),
    *,
    model_name: str | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> DriftReport:
    """Test every field of ``records`` (prediction-log records) against ``profile``."""
    tests = len(NUMERIC_FIELDS) + len(CATEGORICAL_FIELDS) + (1 if profile.prediction else 0)
    corrected = thresholds.alpha / tests
    report = DriftReport(
        verdict="insufficient_data",
        samples=len(records),
        reference_rows=profile.rows,
        model_name=model_name,
        model_versions=sorted({str(r.get("model_version")) for r in records}),
        window_start=window[0].isoformat() if window[0] else None,
        window_end=window[1].isoformat() if window[1] else None,
        thresholds=asdict(thresholds),
        corrected_alpha=corrected,
    )
    if len(records) < thresholds.min_samples:
        return report

    inputs = [record["inputs"] for record in records]
    for numeric in NUMERIC_FIELDS:
        values = np.asarray([row[numeric.name] for row in inputs], dtype=np.float64)
        report.fields.append(
            _numeric_result(
                numeric.name, "numeric", profile.numeric[numeric.name], values, corrected,
                thresholds,
            )
        )  # fmt: skip
    for categorical in CATEGORICAL_FIELDS:
        values_text = [str(row[categorical.name]) for row in inputs]
        report.fields.append(
            _categorical_result(
                categorical.name, profile.categorical[categorical.name], values_text, corrected,
                thresholds,
            )
        )  # fmt: skip
    if profile.prediction is not None:
        predicted = np.asarray([r["default_probability"] for r in records], dtype=np.float64)
        report.fields.append(
            _numeric_result(
                "default_probability", "prediction", profile.prediction, predicted, corrected,
                thresholds,
            )
        )  # fmt: skip
    report.drifted_fields = [result.field for result in report.fields if result.drifted]
    report.verdict = "drift" if report.drifted_fields else "no_drift"
    return report


def _days(start: datetime, end: datetime) -> Iterable[str]:
    day = start.date()
    while day <= end.date():
        yield day.isoformat()
        day += timedelta(days=1)


def read_window(
    uri: str, *, since: datetime, until: datetime, s3_endpoint: str | None = None
) -> list[dict[str, Any]]:
    """Read the prediction-log records logged in ``[since, until)``."""
    location = storage.resolve(uri, s3_endpoint=s3_endpoint)
    filesystem = location.filesystem
    try:
        if not filesystem.exists(location.path):
            raise DataError(f"no prediction log exists at {uri!r}.")
    except DataError:
        raise
    except Exception as error:
        raise DataError(storage.describe_failure(uri, error)) from None
    records: list[dict[str, Any]] = []
    start, end = since.timestamp(), until.timestamp()
    for day in _days(since, until):
        folder = location.join(f"date={day}")
        if not filesystem.exists(folder):
            continue
        for path in sorted(filesystem.find(folder)):
            if not path.endswith(".jsonl.gz"):
                continue
            with storage.open_binary(location, path) as handle:
                lines = gzip.decompress(handle.read()).decode("utf-8").splitlines()
            for line in lines:
                record = json.loads(line)
                if start <= float(record["time"]) < end:
                    records.append(record)
    logger.info(
        "Read %d prediction record(s) of %s to %s from %s.", len(records), since, until, uri
    )
    return records


def parse_window(since: str | None, until: str | None, hours: float) -> tuple[datetime, datetime]:
    """Turn ``--since``/``--until`` (ISO 8601) or the last ``hours`` into a window."""
    try:
        end = datetime.fromisoformat(until) if until else datetime.now(UTC)
        begin = datetime.fromisoformat(since) if since else end - timedelta(hours=hours)
    except ValueError as error:
        raise DataError(
            f"the window bound is not an ISO 8601 time ({error}); use e.g. 2026-12-03T08:00:00Z."
        ) from None
    begin = begin if begin.tzinfo else begin.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if begin >= end:
        raise DataError(f"--since {begin.isoformat()} is not before --until {end.isoformat()}.")
    return begin, end
