"""Encoding applications into the numeric matrix the estimators are fitted on.

The encoding is fixed by the schema, not learned: numeric fields pass through
as floats and each categorical field becomes one indicator column per schema
category. Because nothing is learned, training and serving cannot disagree,
and every output column knows which input field it came from, which is what
folds SHAP contributions of one-hot parts back onto their field.

Two entry points do the same work: :meth:`ApplicationEncoder.transform` on a
DataFrame (training, batches) and :meth:`ApplicationEncoder.transform_records`
on plain dictionaries, the server's fast path that avoids building a DataFrame
for a single request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loanops.schema import CATEGORICAL_FIELDS, FIELDS, CategoricalField, NumericField

# Up to this many records, filling the matrix value by value beats building
# columns first (measured: 3 µs against 14 µs for one record).
_FEW_RECORDS = 4


class ApplicationEncoder:
    """Encode the nine applicant fields as a float matrix with one-hot categories."""

    def __init__(self) -> None:
        names: list[str] = []
        sources: list[str] = []
        for field in FIELDS:
            if isinstance(field, NumericField):
                names.append(field.name)
                sources.append(field.name)
            else:
                names.extend(f"{field.name}={category}" for category in field.categories)
                sources.extend(field.name for _ in field.categories)
        self.feature_names_out: tuple[str, ...] = tuple(names)
        self.source_fields: tuple[str, ...] = tuple(sources)

        # Column offset of each field's first output, and a category -> column
        # lookup per categorical field, for the record path.
        self._offsets: dict[str, int] = {}
        position = 0
        for field in FIELDS:
            self._offsets[field.name] = position
            position += 1 if isinstance(field, NumericField) else len(field.categories)
        self._category_columns: dict[str, dict[str, int]] = {
            field.name: {
                category: self._offsets[field.name] + index
                for index, category in enumerate(field.categories)
            }
            for field in CATEGORICAL_FIELDS
        }
        self._field_columns: dict[str, list[int]] = {
            field.name: [i for i, source in enumerate(sources) if source == field.name]
            for field in FIELDS
        }

    @property
    def n_features_out(self) -> int:
        """Number of columns of the encoded matrix."""
        return len(self.feature_names_out)

    def transform(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Encode a DataFrame holding (at least) the nine applicant fields."""
        encoded = np.zeros((len(frame), self.n_features_out), dtype=np.float64)
        for field in FIELDS:
            offset = self._offsets[field.name]
            values = frame[field.name]
            if isinstance(field, NumericField):
                encoded[:, offset] = values.to_numpy(dtype=np.float64)
            else:
                self._encode_category_column(field, values, encoded)
        return encoded

    def _encode_category_column(
        self, field: CategoricalField, values: pd.Series[Any], encoded: npt.NDArray[np.float64]
    ) -> None:
        lookup = self._category_columns[field.name]
        for category, column in lookup.items():
            encoded[:, column] = (values == category).to_numpy(dtype=np.float64)

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        """Encode validated applications given as mappings of field to value."""
        encoded = np.zeros((len(records), self.n_features_out), dtype=np.float64)
        if len(records) <= _FEW_RECORDS:
            for row, record in enumerate(records):
                for field in FIELDS:
                    value = record[field.name]
                    if isinstance(field, NumericField):
                        encoded[row, self._offsets[field.name]] = value
                    else:
                        encoded[row, self._category_columns[field.name][value]] = 1.0
            return encoded

        # Column by column: one numpy assignment per field instead of one per
        # value (about twice as fast at 100 records).
        rows = np.arange(len(records))
        for field in FIELDS:
            if isinstance(field, NumericField):
                encoded[:, self._offsets[field.name]] = [r[field.name] for r in records]
            else:
                lookup = self._category_columns[field.name]
                encoded[rows, [lookup[r[field.name]] for r in records]] = 1.0
        return encoded

    def fold(self, contributions: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[np.float64]]:
        """Sum per-column values (SHAP contributions) back onto their input field.

        ``contributions`` has one column per encoded feature; the result maps
        each input field to a vector with one value per row.
        """
        return {
            field.name: contributions[:, self._field_columns[field.name]].sum(axis=1)
            for field in FIELDS
        }
