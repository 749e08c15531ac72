"""The promotion policy, pure and against a real MLflow registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from loanops.errors import ConfigurationError, RegistryError
from loanops.promotion import (
    CHALLENGER,
    CHAMPION,
    DECISION_TAG,
    REASON_TAG,
    PromotionPolicy,
    current_version,
    decide,
    promote_version,
)
from loanops.trainer.training import train
from tests.conftest import small_config


def test_first_candidate_meeting_the_minimum_is_promoted() -> None:
    decision = decide(PromotionPolicy(minimum=0.8), candidate_value=0.85, champion_value=None)

    assert decision.promote
    assert "no champion yet" in decision.reason


def test_candidate_below_minimum_is_rejected_with_reason() -> None:
    decision = decide(PromotionPolicy(minimum=0.9), candidate_value=0.85, champion_value=None)

    assert not decision.promote
    assert decision.reason == "eval_roc_auc 0.8500 misses the minimum: it must be at least 0.9000"


def test_small_improvement_is_rejected() -> None:
    policy = PromotionPolicy(min_improvement=0.01)

    decision = decide(policy, candidate_value=0.905, champion_value=0.9, champion_version="3")

    assert not decision.promote
    assert "does not beat champion v3 (0.9000) by the required 0.0100" in decision.reason


def test_lower_is_better_metrics_compare_the_other_way() -> None:
    policy = PromotionPolicy(metric="eval_brier", minimum=0.1)

    assert decide(policy, candidate_value=0.05, champion_value=0.06, champion_version="1").promote
    assert not decide(policy, candidate_value=0.07, champion_value=0.06).promote
    assert not decide(policy, candidate_value=0.2, champion_value=None).promote


def test_equal_score_does_not_replace_the_champion() -> None:
    decision = decide(PromotionPolicy(), candidate_value=0.9, champion_value=0.9)

    assert not decision.promote


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"metric": "accuracy"}, "promotion metric 'accuracy' is unknown; accepted: eval_roc_auc"),
        ({"min_improvement": -0.1}, "min_improvement -0.1 is negative"),
    ],
)
def test_policy_rejects_bad_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PromotionPolicy(**settings)  # type: ignore[arg-type]


def test_registry_promotion_moves_aliases_and_tags_reasons(
    mlflow_server: str, synthetic_csv: Path
) -> None:
    name = "promotion-flow"
    client = mlflow.MlflowClient(mlflow_server)
    policy = PromotionPolicy(minimum=0.7, min_improvement=0.05)
    first = train(small_config(str(synthetic_csv), name, tracking_uri=mlflow_server, max_evals=1))

    version, decision = promote_version(client, model_name=name, version=None, policy=policy)

    assert (version, decision.promote) == (first.version, True)
    assert current_version(client, name, CHAMPION) == first.version

    second = train(
        small_config(str(synthetic_csv), name, tracking_uri=mlflow_server, max_evals=1, seed=12)
    )
    version, decision = promote_version(client, model_name=name, version=None, policy=policy)

    assert version == second.version
    assert not decision.promote
    assert current_version(client, name, CHAMPION) == first.version
    assert current_version(client, name, CHALLENGER) == second.version
    tags = client.get_model_version(name, second.version).tags
    assert tags[DECISION_TAG] == "reject"
    assert f"does not beat champion v{first.version}" in tags[REASON_TAG]


def test_dry_run_records_the_decision_only(mlflow_server: str, synthetic_csv: Path) -> None:
    name = "promotion-dry-run"
    client = mlflow.MlflowClient(mlflow_server)
    outcome = train(small_config(str(synthetic_csv), name, tracking_uri=mlflow_server, max_evals=1))

    _, decision = promote_version(
        client, model_name=name, version=None, policy=PromotionPolicy(), apply=False
    )

    assert decision.promote
    assert current_version(client, name, CHAMPION) is None
    assert client.get_model_version(name, outcome.version).tags[DECISION_TAG] == "dry-run-promote"


def test_promoting_without_a_challenger_is_a_clear_error(mlflow_server: str) -> None:
    client = mlflow.MlflowClient(mlflow_server)
    client.create_registered_model("promotion-empty")

    with pytest.raises(RegistryError, match="'promotion-empty' has no 'challenger' version"):
        promote_version(
            client, model_name="promotion-empty", version=None, policy=PromotionPolicy()
        )
