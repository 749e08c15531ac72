"""The reference profile of a model version's training data.

Drift checks compare recent prediction requests with the data a version was
trained on. The profile is what they compare against, stored as JSON next to
the model: per numeric field the inner bin edges (deciles) with the share of
training rows in each bin, per categorical field the share of each category,
the same for the predicted P(default), and a capped random sample of each
numeric field for the KS test.

Bins are open at both ends: the first is ``(-inf, e1]`` and the last
``(ek, +inf)``, so values beyond anything seen in training still land in a bin
and move the PSI instead of vanishing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loanops.schema import CATEGORICAL_FIELDS, NUMERIC_FIELDS

PROFILE_ARTIFACT = "reference_profile.json"
DEFAULT_BIN_COUNT = 10
DEFAULT_SAMPLE_SIZE = 5000


def inner_edges(values: npt.ArrayLike, bin_count: int = DEFAULT_BIN_COUNT) -> list[float]:
    """Return the distinct inner quantile edges splitting ``values`` into bins."""
    array = np.asarray(values, dtype=np.float64)
    quantiles = np.linspace(0, 1, bin_count + 1)[1:-1]
    return [float(edge) for edge in np.unique(np.quantile(array, quantiles))]


def bin_counts(edges: list[float], values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Count ``values`` per open-ended bin: ``len(edges) + 1`` counts."""
    array = np.asarray(values, dtype=np.float64)
    # side="left" puts a value equal to an edge in the bin that edge closes,
    # matching the (a, b] intervals described above.
    indices = np.searchsorted(np.asarray(edges, dtype=np.float64), array, side="left")
    return np.bincount(indices, minlength=len(edges) + 1).astype(np.int64)


@dataclass(slots=True)
class NumericProfile:
    """Distribution of one numeric quantity in the training data."""

    edges: list[float]
    shares: list[float]
    minimum: float
    maximum: float
    mean: float
    sample: list[float]

    @classmethod
    def from_values(
        cls, values: npt.ArrayLike, *, rng: np.random.Generator, sample_size: int
    ) -> NumericProfile:
        """Profile ``values``, keeping a random sample of at most ``sample_size``."""
        array = np.asarray(values, dtype=np.float64)
        edges = inner_edges(array)
        counts = bin_counts(edges, array)
        take = min(sample_size, len(array))
        sample = rng.choice(array, size=take, replace=False) if take else array
        return cls(
            edges=edges,
            shares=[float(c) for c in counts / max(len(array), 1)],
            minimum=float(array.min()),
            maximum=float(array.max()),
            mean=float(array.mean()),
            sample=[float(v) for v in sample],
        )


@dataclass(slots=True)
class ReferenceProfile:
    """Everything a drift check needs to know about a version's training data."""

    rows: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, dict[str, float]]
    prediction: NumericProfile | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        default_probability: npt.ArrayLike | None = None,
        seed: int = 0,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
    ) -> ReferenceProfile:
        """Profile the applicant fields of ``frame`` (and predictions, if given)."""
        rng = np.random.default_rng(seed)
        numeric = {
            f.name: NumericProfile.from_values(frame[f.name], rng=rng, sample_size=sample_size)
            for f in NUMERIC_FIELDS
        }
        categorical = {
            f.name: {c: float((frame[f.name] == c).mean()) for c in f.categories}
            for f in CATEGORICAL_FIELDS
        }
        prediction = None
        if default_probability is not None:
            prediction = NumericProfile.from_values(
                default_probability, rng=rng, sample_size=sample_size
            )
        return cls(rows=len(frame), numeric=numeric, categorical=categorical, prediction=prediction)

    def to_json(self) -> str:
        """Serialise the profile as JSON text."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        """Read a profile written by :meth:`to_json`."""
        raw = json.loads(text)
        prediction = raw.get("prediction")
        return cls(
            rows=int(raw["rows"]),
            numeric={name: NumericProfile(**p) for name, p in raw["numeric"].items()},
            categorical={
                name: {k: float(v) for k, v in shares.items()}
                for name, shares in raw["categorical"].items()
            },
            prediction=NumericProfile(**prediction) if prediction else None,
            metadata=dict(raw.get("metadata", {})),
        )
