"""The prediction API over HTTP, against a real ``loanops serve`` process."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from loanops.trainer.training import TrainingOutcome

from .conftest import APPLICATION, RunningServer


def post(server: RunningServer, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=30, **kwargs)


def test_predict_states_decision_and_both_probabilities(
    server: RunningServer, served_version: TrainingOutcome
) -> None:
    answer = post(server, "/predict", APPLICATION).json()

    assert answer["model_version"] == served_version.version
    assert answer["threshold"] == pytest.approx(served_version.threshold)
    assert answer["default_probability"] + answer["approval_probability"] == pytest.approx(1.0)
    assert answer["probability"] == answer["approval_probability"]
    assert answer["approved"] is (answer["default_probability"] < answer["threshold"])
    assert answer["decision"] == ("approved" if answer["approved"] else "declined")
    assert all(reason["contribution"] > 0 for reason in answer["reasons"])
    assert all("raises the estimated risk of default" in r["text"] for r in answer["reasons"])


@pytest.mark.parametrize("age", [18, 120])
def test_age_bounds_score_without_error(server: RunningServer, age: int) -> None:
    response = post(server, "/predict", {**APPLICATION, "person_age": age})

    assert response.status_code == 200, response.text


def test_integral_floats_are_accepted_for_integer_fields(server: RunningServer) -> None:
    body = {**APPLICATION, "person_age": 35.0, "cb_person_cred_hist_length": 14.0}

    assert post(server, "/predict", body).status_code == 200


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("person_age", "35", "must be a JSON number; accepted: an integer from 18 to 120"),
        ("person_income", True, "must be a JSON number"),
        ("person_age", 35.5, "must be a whole number"),
        ("person_age", 17, "greater than or equal to 18"),
        ("loan_intent", "GAMBLING", "unknown value; accepted: one of EDUCATION, MEDICAL"),
    ],
)
def test_invalid_fields_are_named_with_value_and_accepted(
    server: RunningServer, field: str, value: Any, fragment: str
) -> None:
    response = post(server, "/predict", {**APPLICATION, field: value})

    assert response.status_code == 422
    detail = response.json()["details"][0]
    assert detail["field"] == field
    assert detail["value"] == value
    assert fragment in detail["message"]
    assert "Traceback" not in response.text


def test_non_finite_numbers_are_refused(server: RunningServer) -> None:
    body = httpx.Request("POST", "/", json=APPLICATION).content.decode()
    body = body.replace('"loan_percent_income":0.17', '"loan_percent_income":NaN')
    response = httpx.post(
        f"{server.url}/predict", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["details"][0]["message"].startswith("must be a finite number")


def test_unknown_and_missing_fields_are_refused(server: RunningServer) -> None:
    body = {**APPLICATION, "loan_grade": "A"}
    del body["loan_amnt"]

    details = post(server, "/predict", body).json()["details"]

    assert {d["field"]: d["message"] for d in details} == {
        "loan_amnt": "field required; accepted: a number from 1 to 10000000",
        "loan_grade": "unknown field; the application has exactly the nine schema fields",
    }


def test_malformed_json_is_a_bad_request(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.url}/predict", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code in (400, 422)
    assert "Traceback" not in response.text


def test_batch_scores_in_order_like_single_calls(server: RunningServer) -> None:
    applications = [{**APPLICATION, "loan_percent_income": share} for share in (0.05, 0.3, 0.6)]

    batch = post(server, "/predict/batch", {"applications": applications}).json()
    singles = [post(server, "/predict", a).json() for a in applications]

    assert batch["count"] == 3
    for from_batch, single in zip(batch["decisions"], singles, strict=True):
        # Exactly: alone or in a batch, an application gets the same P(default).
        assert from_batch["default_probability"] == single["default_probability"]


def test_batch_with_bad_items_is_refused_whole(server: RunningServer) -> None:
    applications = [APPLICATION, {**APPLICATION, "person_age": 12}, {**APPLICATION, "x": 1}]
    counted_before = _predictions_total(server)

    response = post(server, "/predict/batch", {"applications": applications})

    assert response.status_code == 422
    assert "2 of 3 applications are invalid (indexes 1, 2); nothing was scored" in response.text
    assert [(d["index"], d["field"]) for d in response.json()["details"]] == [
        (1, "person_age"),
        (2, "x"),
    ]
    assert _predictions_total(server) == counted_before


@pytest.mark.parametrize(("count", "fragment"), [(0, "the batch is empty"), (51, "at most 50")])
def test_empty_and_oversized_batches_are_refused(
    server: RunningServer, count: int, fragment: str
) -> None:
    response = post(server, "/predict/batch", {"applications": [APPLICATION] * count})

    assert response.status_code == 422
    assert fragment in response.json()["message"]


def test_oversized_body_gets_413(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.url}/predict/batch",
        content=b'{"applications": [' + b" " * 2_000_000 + b"]}",
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413
    assert "exceeds the limit of 1048576 bytes" in response.json()["message"]


def test_explain_adds_up_to_the_raw_output(server: RunningServer) -> None:
    answer = post(server, "/explain", APPLICATION).json()

    total = answer["base_value"] + sum(c["contribution"] for c in answer["contributions"])

    assert answer["unit"] == "log-odds"
    assert answer["contributions"][0]["field"] == "person_age"
    assert len(answer["contributions"]) == 9
    assert total == pytest.approx(answer["raw_output"], abs=1e-6)
    assert 1 / (1 + math.exp(-answer["raw_output"])) > 0


def test_probes_and_version_metric(server: RunningServer, served_version: TrainingOutcome) -> None:
    assert httpx.get(f"{server.url}/livez").status_code == 200
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready == httpx.get(f"{server.url}/health").json()
    assert ready["model_version"] == served_version.version
    metrics = httpx.get(f"{server.url}/metrics").text
    assert f'loan_model_info{{name="server-xgboost",version="{served_version.version}"}} 1.0' in (
        metrics
    )
    assert 'loan_request_latency_seconds_bucket{le="0.001",path="/predict"}' in metrics
    assert 'loan_request_latency_seconds_bucket{le="10.0",path="/predict"}' in metrics


def test_responses_carry_a_request_id(server: RunningServer) -> None:
    response = post(server, "/predict", APPLICATION, headers={"x-request-id": "abc-123"})

    assert response.headers["x-request-id"] == "abc-123"


def test_web_form_is_served_without_external_assets(server: RunningServer) -> None:
    page = httpx.get(f"{server.url}/").text

    assert '<form id="application">' in page
    assert "http://" not in page
    assert "https://" not in page


def _predictions_total(server: RunningServer) -> float:
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("loan_predictions_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_reasons_parameter_chooses_which_decisions_are_explained(server: RunningServer) -> None:
    risky = {**APPLICATION, "loan_percent_income": 0.6, "cb_person_default_on_file": "Y"}
    applications = [APPLICATION, risky]

    batch = post(server, "/predict/batch", {"applications": applications}).json()["decisions"]
    declined = post(server, "/predict/batch?reasons=declined", {"applications": applications})
    everything = post(server, "/predict/batch?reasons=all", {"applications": applications}).json()
    single = [post(server, "/predict", application).json() for application in applications]
    nothing = post(server, "/predict?reasons=none", risky).json()

    assert all(decision["reasons"] == [] for decision in batch)
    for decision in [*declined.json()["decisions"], *single]:
        assert bool(decision["reasons"]) == (not decision["approved"])
    assert all(d["reasons"] for d in everything["decisions"])
    assert nothing["reasons"] == []
    assert post(server, "/predict?reasons=some", risky).status_code == 422


def test_integers_beyond_any_float_are_refused_not_crashed(server: RunningServer) -> None:
    body = httpx.Request("POST", "/", json=APPLICATION).content.decode()
    body = body.replace('"person_age":37', '"person_age":1' + "0" * 400)
    response = httpx.post(
        f"{server.url}/predict", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["details"][0]["message"].startswith("is far too large")


def test_lone_surrogates_are_echoed_safely(server: RunningServer) -> None:
    body = httpx.Request("POST", "/", json=APPLICATION).content.decode()
    body = body.replace('"EDUCATION"', '"\\ud800"')
    response = httpx.post(
        f"{server.url}/predict", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.headers["x-request-id"]


def test_chunked_oversized_body_gets_413(server: RunningServer) -> None:
    def chunks() -> Any:
        yield b'{"applications": ['
        for _ in range(40):
            yield b" " * 50_000

    response = httpx.post(
        f"{server.url}/predict/batch",
        content=chunks(),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413


def test_thousands_of_unknown_fields_get_a_short_answer(server: RunningServer) -> None:
    body = {**APPLICATION, **{f"extra_{n}": n for n in range(5000)}}

    response = post(server, "/predict", body)

    assert response.status_code == 422
    assert len(response.json()["details"]) == 50
    assert "4950 more" in response.json()["message"]
    assert len(response.content) < 20_000


def test_non_object_batch_items_are_reported_by_index(server: RunningServer) -> None:
    response = post(server, "/predict/batch", {"applications": [APPLICATION, 1, "x"]})

    assert response.status_code == 422
    assert [(d["index"], d["field"], d["message"]) for d in response.json()["details"]] == [
        (1, "applications", "must be a JSON object with the nine application fields"),
        (2, "applications", "must be a JSON object with the nine application fields"),
    ]


def test_unknown_batch_body_fields_are_named_as_such(server: RunningServer) -> None:
    response = post(server, "/predict/batch", {"applications": [APPLICATION], "items": []})

    assert response.status_code == 422
    (detail,) = response.json()["details"]
    assert detail["field"] == "body"
    assert detail["message"] == "unknown field(s) 'items'; the body holds only 'applications'"
