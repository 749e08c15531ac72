"""The request path's building blocks, in process: same results as the slow ways.

Each part was rewritten for speed (batched histograms, column-wise encoding,
compiled range checks, pydantic-core log lines); each test pins it to what
the straightforward implementation gives.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from pydantic import ValidationError

from loanops.features import ApplicationEncoder
from loanops.schema import FIELDS, CategoricalField
from loanops.server.metrics import PROBABILITY_BUCKETS, BatchHistogram, ServerMetrics
from loanops.server.predictions import PredictionLog
from loanops.server.schemas import EXAMPLE_APPLICATION, LoanApplication
from loanops.server.settings import PredictionLogSettings


def _exposition(registry: CollectorRegistry) -> str:
    text = generate_latest(registry).decode()
    # Creation times and the last digits of float sums legitimately differ.
    text = re.sub(r"_created \S+", "_created T", text)
    return re.sub(r"_sum (\S+)", lambda m: f"_sum {float(m.group(1)):.9f}", text)


@pytest.mark.parametrize("seed", [1, 2])
def test_batch_histogram_exposes_like_the_library_histogram(seed: int) -> None:
    generator = random.Random(seed)
    values = [generator.random() for _ in range(300)] + [0.0, 0.05, 0.5, 0.95, 1.0, 3.0]
    expected, got = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("p", "Doc.", buckets=PROBABILITY_BUCKETS, registry=expected)
    for value in values:
        histogram.observe(value)
    batched = BatchHistogram("p", "Doc.", buckets=PROBABILITY_BUCKETS, registry=got)

    # Small calls take the Python path, large ones numpy's.
    batched.observe(values[:1])
    batched.observe(values[1:5])
    batched.observe(values[5:])

    assert _exposition(got) == _exposition(expected)
    assert 'p_bucket{le="0.05"}' in _exposition(got)


def test_approval_rate_covers_exactly_the_last_window() -> None:
    metrics = ServerMetrics(approval_window=10)
    decisions: list[bool] = []
    generator = random.Random(3)
    for size in (1, 3, 7, 25, 2, 10, 1):
        approved = [generator.random() < 0.6 for _ in range(size)]
        decisions.extend(approved)
        metrics.observe_decisions(
            approved=approved,
            default_probability=[0.2] * size,
            applications=[EXAMPLE_APPLICATION] * size,
        )
        last = decisions[-10:]
        rate = metrics.registry.get_sample_value("loan_approval_rate")
        assert rate == pytest.approx(sum(last) / len(last))

    total = metrics.registry.get_sample_value("loan_predictions_total", {"result": "approved"})
    assert total == sum(decisions)


def _varied_applications(count: int) -> list[dict[str, Any]]:
    generator = random.Random(count)
    applications = []
    for _ in range(count):
        application = dict(EXAMPLE_APPLICATION)
        for field in FIELDS:
            if isinstance(field, CategoricalField):
                application[field.name] = generator.choice(field.categories)
            else:
                application[field.name] = round(generator.uniform(field.minimum, field.maximum))
        applications.append(application)
    return applications


@pytest.mark.parametrize("count", [0, 1, 4, 5, 100])
def test_record_encoding_matches_the_dataframe_encoding(count: int) -> None:
    import pandas as pd

    encoder = ApplicationEncoder()
    applications = _varied_applications(count)
    frame = pd.DataFrame(applications, columns=[f.name for f in FIELDS])

    assert (encoder.transform_records(applications) == encoder.transform(frame)).all()


def test_prediction_log_lines_read_back_as_the_records(tmp_path: Path) -> None:
    log = PredictionLog(PredictionLogSettings(uri=str(tmp_path / "sink"), spool_dir=tmp_path))
    records = [
        {"request_id": "é-ß", "item": n, "inputs": application, "default_probability": 1e-5 * n}
        for n, application in enumerate(_varied_applications(3))
    ]

    log.append(records[:1])
    log.append([])
    log.append(records[1:])
    log.rotate()
    (segment,) = tmp_path.glob("*.closed")

    assert [json.loads(line) for line in segment.read_text("utf-8").splitlines()] == records


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("person_age", 1e300, "less_than_equal"),
        ("person_age", 17.0, "greater_than_equal"),
        ("person_age", 121, "less_than_equal"),
        ("person_income", 0, "greater_than_equal"),
        ("loan_percent_income", 11, "less_than_equal"),
    ],
)
def test_range_errors_echo_the_value_sent(field: str, value: float, kind: str) -> None:
    with pytest.raises(ValidationError) as raised:
        LoanApplication.model_validate({**EXAMPLE_APPLICATION, field: value})

    (error,) = raised.value.errors()
    assert (error["type"], error["input"], type(error["input"])) == (kind, value, type(value))


def test_validated_numbers_take_their_field_types() -> None:
    body = {**EXAMPLE_APPLICATION, "person_age": 35.0, "person_income": 35000}

    fields = LoanApplication.model_validate(body).model_dump()

    assert (fields["person_age"], type(fields["person_age"])) == (35, int)
    assert (fields["person_income"], type(fields["person_income"])) == (35000.0, float)
    schema = LoanApplication.model_json_schema()["properties"]["person_age"]
    assert (schema["minimum"], schema["maximum"]) == (18, 120)
