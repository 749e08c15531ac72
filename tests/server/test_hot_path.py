"""The request path's building blocks, in process: same results as the slow ways.

Each part was rewritten for speed (batched histograms, column-wise encoding,
compiled range checks, pydantic-core log lines, XGBoost through its C API);
each test pins it to what the straightforward implementation gives.
"""

from __future__ import annotations

import json
import pickle
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from pydantic import ValidationError

from loanops.artifacts import LoadedModel
from loanops.boosters import DenseBoosterPredictor
from loanops.features import ApplicationEncoder
from loanops.model import FAMILIES, LoanRiskModel
from loanops.schema import FIELDS, CategoricalField, NumericField
from loanops.server.api import validate_batch
from loanops.server.errors import InvalidApplicationError
from loanops.server.metrics import PROBABILITY_BUCKETS, BatchHistogram, ServerMetrics
from loanops.server.predictions import PredictionLog
from loanops.server.schemas import EXAMPLE_APPLICATION, PLAIN_APPLICATIONS, LoanApplication
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


def test_xgboost_c_api_predicts_exactly_what_inplace_predict_does(
    loaded_models: dict[str, LoadedModel],
) -> None:
    model = loaded_models["xgboost"].model
    booster = model.estimator.get_booster()
    predictor = DenseBoosterPredictor(booster)
    encoded = model.encoder.transform_records(_varied_applications(120))

    for rows in (encoded[:1], encoded[:5], encoded, encoded[::3]):  # a strided view too
        expected = booster.inplace_predict(rows, validate_features=False).astype(np.float64)
        assert np.array_equal(predictor.predict(rows), expected)
    assert predictor.predict(encoded[:0]).shape == (0,)
    with pytest.raises(RuntimeError, match=r"XGBoost could not predict: .*feature"):
        predictor.predict(encoded[:, :5])
    # The served model takes this path, not the slow one, with the locked xgboost.
    assert isinstance(model._xgboost_predictor(), DenseBoosterPredictor)


def test_xgboost_c_api_gives_each_thread_its_own_rows(
    loaded_models: dict[str, LoadedModel],
) -> None:
    model = loaded_models["xgboost"].model
    predictor = DenseBoosterPredictor(model.estimator.get_booster())
    matrices = [model.encoder.transform_records(_varied_applications(n)) for n in (7, 30, 64, 99)]
    expected = [predictor.predict(matrix) for matrix in matrices]

    with ThreadPoolExecutor(max_workers=4) as pool:
        rounds = [pool.map(predictor.predict, matrices) for _ in range(25)]
        for results in rounds:
            for got, want in zip(results, expected, strict=True):
                assert np.array_equal(got, want)


def test_xgboost_c_api_refuses_models_with_several_outputs() -> None:
    import xgboost

    generator = np.random.default_rng(0)
    features = generator.random((60, 4))
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3},
        xgboost.DMatrix(features, label=generator.integers(0, 3, 60)),
        num_boost_round=2,
    )

    with pytest.raises(ValueError, match="6 values for 2 rows: only binary models"):
        DenseBoosterPredictor(booster).predict(features[:2])


def test_a_model_that_predicted_still_pickles_and_predicts_the_same(
    loaded_models: dict[str, LoadedModel],
) -> None:
    model = loaded_models["xgboost"].model
    encoded = model.encoder.transform_records(_varied_applications(10))
    before = model.default_probability_encoded(encoded)

    copy = pickle.loads(pickle.dumps(model))

    assert "_dense_predictor" not in copy.__dict__
    assert np.array_equal(copy.default_probability_encoded(encoded), before)


def _field_values(field: NumericField | CategoricalField) -> st.SearchStrategy[Any]:
    """Values a client may send for a field: valid, borderline and wrong kinds."""
    wrong = st.one_of(
        st.booleans(),
        st.none(),
        st.text(max_size=3),
        st.sampled_from([float("inf"), float("-inf"), float("nan"), 10**400, -(10**30)]),
    )
    if isinstance(field, CategoricalField):
        return st.one_of(st.sampled_from(field.categories), st.sampled_from(["rent", ""]), wrong)
    low, high = field.minimum, field.maximum
    return st.one_of(
        st.integers(int(low) - 2, int(min(high, 10**7)) + 2),
        st.integers(int(low), int(min(high, 10**7))).map(float),  # 35.0 for 35
        st.floats(low - 1, high + 1, allow_nan=False),
        wrong,
    )


@st.composite
def _batch_items(draw: st.DrawFn) -> Any:
    """Batch items: a valid application with up to two fields changed, or no object."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from([None, [], "x", 1]))
    application = dict(EXAMPLE_APPLICATION)
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=2)):
        application[field.name] = draw(_field_values(field))
    if draw(st.integers(0, 9)) == 0:
        application.pop(draw(st.sampled_from([f.name for f in FIELDS])))
    if draw(st.integers(0, 9)) == 0:
        application["unknown"] = 1
    return application


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_batch_items(), min_size=1, max_size=6))
def test_batch_fast_path_accepts_only_what_loan_application_accepts(items: list[Any]) -> None:
    try:
        expected: list[dict[str, Any]] | None = [
            LoanApplication.model_validate(item).model_dump() for item in items
        ]
    except ValidationError:
        expected = None
    try:
        fast: list[dict[str, Any]] | None = PLAIN_APPLICATIONS.validate_python(items)
    except ValidationError:
        fast = None

    if fast is not None:
        assert expected is not None
        assert [[(k, v, type(v)) for k, v in sorted(a.items())] for a in fast] == [
            [(k, v, type(v)) for k, v in sorted(a.items())] for a in expected
        ]
    if expected is None:
        with pytest.raises(InvalidApplicationError):
            validate_batch(items, max_size=10)
    else:
        assert validate_batch(items, max_size=10) == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_an_application_gets_the_same_probability_alone_and_in_a_batch(
    loaded_models: dict[str, LoadedModel], family: str
) -> None:
    model = loaded_models[family].model
    encoded = model.encoder.transform_records(_varied_applications(300))

    together = model.default_probability_encoded(encoded)
    alone = np.concatenate([model.default_probability_encoded(row[None, :]) for row in encoded])

    # To the last bit: one bit can be the difference between approved and declined.
    assert together.tolist() == alone.tolist()


def test_a_refit_estimator_is_predicted_with_its_new_booster() -> None:
    import xgboost

    generator = np.random.default_rng(0)
    features = generator.normal(size=(400, 18))
    labels = (features[:, 0] > 0).astype(int)
    estimator = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(features, labels)
    model = LoanRiskModel(family="xgboost", estimator=estimator, calibrator=None, threshold=0.5)
    before = model.raw_default_probability(features[:20])

    estimator.fit(features, 1 - labels)

    after = model.raw_default_probability(features[:20])
    expected = estimator.get_booster().inplace_predict(features[:20], validate_features=False)
    assert np.array_equal(after, expected.astype(np.float64))
    assert not np.allclose(after, before)
