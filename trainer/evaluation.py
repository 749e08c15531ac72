"""Threshold choice, evaluation metrics and the diagnostic plots of a run.

The threshold is chosen on the calibration split, the metrics are computed
once on the evaluation split. Every metric treats the default (``loan_status
= 1``) as the positive class and P(default) as the score. Plots are written
as PNG files for MLflow: confusion matrix, ROC curve, reliability curve and
global SHAP importance per input field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in Jobs and CI; must precede pyplot.

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    RocCurveDisplay,
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)


def choose_threshold(
    labels: npt.NDArray[Any], default_probability: npt.NDArray[np.float64]
) -> float:
    """Return the P(default) threshold with the best F1 for the default class."""
    precision, recall, thresholds = precision_recall_curve(labels, default_probability)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    # precision/recall have one more entry than thresholds (the end point).
    return float(thresholds[int(np.nanargmax(f1[:-1]))])


def evaluation_metrics(
    labels: npt.NDArray[Any], default_probability: npt.NDArray[np.float64], threshold: float
) -> dict[str, float]:
    """Return the ``eval_*`` metrics of P(default) scores at a threshold."""
    declined = (default_probability >= threshold).astype(int)
    clipped = np.clip(default_probability, 1e-15, 1 - 1e-15)
    return {
        "eval_roc_auc": float(roc_auc_score(labels, default_probability)),
        "eval_pr_auc": float(average_precision_score(labels, default_probability)),
        "eval_f1": float(f1_score(labels, declined, zero_division=0)),
        "eval_precision": float(precision_score(labels, declined, zero_division=0)),
        "eval_recall": float(recall_score(labels, declined, zero_division=0)),
        "eval_accuracy": float(accuracy_score(labels, declined)),
        "eval_brier": float(brier_score_loss(labels, default_probability)),
        "eval_log_loss": float(log_loss(labels, clipped, labels=[0, 1])),
    }


def plot_confusion_matrix(labels: npt.NDArray[Any], declined: npt.NDArray[Any], path: Path) -> Path:
    """Write the confusion matrix (repaid / defaulted against approved / declined)."""
    figure, axes = plt.subplots(figsize=(4.5, 4))
    matrix = confusion_matrix(labels, declined, labels=[0, 1])
    ConfusionMatrixDisplay(matrix, display_labels=["repaid (0)", "defaulted (1)"]).plot(
        ax=axes, colorbar=False
    )
    axes.set_xlabel("predicted: approved (0) / declined (1)")
    axes.set_title("Evaluation split")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_roc(
    labels: npt.NDArray[Any], default_probability: npt.NDArray[np.float64], path: Path
) -> Path:
    """Write the ROC curve of P(default) on the evaluation split."""
    figure, axes = plt.subplots(figsize=(4.5, 4))
    RocCurveDisplay.from_predictions(labels, default_probability, ax=axes, name="P(default)")
    axes.set_title("ROC, evaluation split")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_reliability(
    labels: npt.NDArray[Any],
    calibrated: npt.NDArray[np.float64],
    raw: npt.NDArray[np.float64],
    path: Path,
) -> Path:
    """Write the reliability curve of calibrated and raw P(default)."""
    figure, axes = plt.subplots(figsize=(4.5, 4))
    for name, scores in (("calibrated", calibrated), ("uncalibrated", raw)):
        observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
        axes.plot(predicted, observed, marker="o", label=name)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axes.set_xlabel("predicted P(default)")
    axes.set_ylabel("observed default rate")
    axes.set_title("Reliability, evaluation split")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_importance(importance: dict[str, float], unit: str, path: Path) -> Path:
    """Write mean |SHAP| per input field as a horizontal bar chart."""
    ordered = sorted(importance.items(), key=lambda item: item[1])
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.barh([name for name, _ in ordered], [value for _, value in ordered])
    axes.set_xlabel(f"mean |SHAP contribution| to P(default) ({unit})")
    axes.set_title("Global importance, evaluation sample")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
