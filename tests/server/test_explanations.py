"""SHAP explanations and scoring, in process, for every estimator family."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from loanops.artifacts import LoadedModel
from loanops.explanations import Explainer
from loanops.model import FAMILIES
from loanops.schema import FEATURE_NAMES
from loanops.server.scoring import Scorer

from .conftest import APPLICATION


@pytest.mark.parametrize("family", FAMILIES)
def test_contributions_add_up_to_the_raw_output(
    loaded_models: dict[str, LoadedModel], synthetic_frame: pd.DataFrame, family: str
) -> None:
    model = loaded_models[family].model
    explainer = Explainer(model)
    encoded = model.encode(synthetic_frame.head(200))

    explanation = explainer.explain_encoded(encoded)
    total = explanation.base_value + sum(explanation.contributions.values())

    assert set(explanation.contributions) == set(FEATURE_NAMES)
    # XGBoost computes margins and contributions in float32: a margin near 5
    # carries rounding of about 1e-6 on its own, so its bound is float32's.
    tolerance = 1e-5 if family == "xgboost" else 1e-6
    np.testing.assert_allclose(total, explainer.raw_output(encoded), rtol=0, atol=tolerance)
    assert explanation.unit == ("probability" if family == "random_forest" else "log-odds")


@pytest.mark.parametrize("family", FAMILIES)
def test_scorer_agrees_with_the_model(
    loaded_models: dict[str, LoadedModel], synthetic_frame: pd.DataFrame, family: str
) -> None:
    loaded = loaded_models[family]
    scorer = Scorer(loaded)
    frame = synthetic_frame.head(100)
    records = frame.loc[:, list(FEATURE_NAMES)].to_dict("records")

    decisions = scorer.score(records)

    expected = loaded.model.default_probability(frame)
    got = np.asarray([d.default_probability for d in decisions])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [d.approved for d in decisions] == list(expected < loaded.model.threshold)


@pytest.mark.parametrize("family", FAMILIES)
def test_explain_endpoint_logic_is_additive(
    loaded_models: dict[str, LoadedModel], family: str
) -> None:
    answer = Scorer(loaded_models[family]).explain(APPLICATION)

    total = answer.base_value + sum(c.contribution for c in answer.contributions)

    assert total == pytest.approx(answer.raw_output, abs=1e-6)


def test_single_row_scoring_is_fast_enough_to_serve(
    loaded_models: dict[str, LoadedModel],
) -> None:
    # Not a benchmark (bench/serve.py is): a guard against a 10x regression.
    scorer = Scorer(loaded_models["xgboost"])
    for _ in range(20):
        scorer.score([APPLICATION])
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        scorer.score([APPLICATION])
        timings.append(time.perf_counter() - started)

    assert float(np.median(timings)) < 0.02
