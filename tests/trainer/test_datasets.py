"""Loading, validating and splitting labelled applications."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loanops.errors import DataError, DataSourceError
from loanops.schema import TARGET
from loanops.trainer.datasets import load_dataset, read_frame, split, validate


def messy(frame: pd.DataFrame) -> pd.DataFrame:
    """Mix one row of each known fault into good rows."""
    bad = frame.head(7).copy()
    bad.loc[bad.index[0], "person_emp_length"] = np.nan
    bad.loc[bad.index[1], "person_income"] = -5000
    bad.loc[bad.index[2], "person_age"] = 144
    bad.loc[bad.index[3], "loan_intent"] = "GAMBLING"
    bad.loc[bad.index[4], "person_home_ownership"] = "CASTLE"
    bad.loc[bad.index[5], "person_age"] = 17
    bad["id"] = bad["id"] + 10_000_000
    duplicate = frame.tail(2)
    return pd.concat([frame, bad.head(6), duplicate], ignore_index=True)


def test_validate_drops_each_fault_with_its_count(synthetic_frame: pd.DataFrame) -> None:
    kept, dropped = validate(messy(synthetic_frame))

    assert len(kept) == len(synthetic_frame)
    assert dropped == {
        "missing person_emp_length": 1,
        "person_income below 1": 1,
        "person_age above 120": 1,
        "unknown loan_intent": 1,
        "unknown person_home_ownership": 1,
        "person_age below 18": 1,
        "exact duplicate": 2,
    }


def test_validate_accepts_the_age_bounds(synthetic_frame: pd.DataFrame) -> None:
    frame = synthetic_frame.head(2).copy()
    frame["person_age"] = [18, 120]

    kept, dropped = validate(frame)

    assert list(kept["person_age"]) == [18, 120]
    assert not dropped


def test_validate_names_missing_columns(synthetic_frame: pd.DataFrame) -> None:
    frame = synthetic_frame.drop(columns=["loan_amnt", TARGET])

    with pytest.raises(DataError, match=r"lacks the required column\(s\) loan_amnt, loan_status"):
        validate(frame)


def test_split_parts_are_disjoint_and_stratified(synthetic_frame: pd.DataFrame) -> None:
    parts = split(synthetic_frame, seed=3)
    ids = [set(part["id"]) for part in (parts.train, parts.calibration, parts.evaluation)]

    assert not ids[0] & ids[1]
    assert not ids[0] & ids[2]
    assert not ids[1] & ids[2]
    assert sum(map(len, ids)) == len(synthetic_frame)
    overall = synthetic_frame[TARGET].mean()
    for part in (parts.train, parts.calibration, parts.evaluation):
        assert part[TARGET].mean() == pytest.approx(overall, abs=0.01)


def test_split_is_reproducible_for_a_seed(synthetic_frame: pd.DataFrame) -> None:
    first, second = split(synthetic_frame, seed=5), split(synthetic_frame, seed=5)

    assert list(first.evaluation["id"]) == list(second.evaluation["id"])


def test_load_dataset_reads_a_folder_of_csv_and_parquet(
    synthetic_frame: pd.DataFrame, tmp_path: Path
) -> None:
    half = len(synthetic_frame) // 2
    synthetic_frame.iloc[:half].to_csv(tmp_path / "part-1.csv", index=False)
    synthetic_frame.iloc[half:].to_parquet(tmp_path / "part-2.parquet", index=False)

    dataset = load_dataset(str(tmp_path))

    assert dataset.rows_read == len(synthetic_frame)
    assert len(dataset.files) == 2


def test_content_hash_ignores_file_layout(synthetic_frame: pd.DataFrame, tmp_path: Path) -> None:
    synthetic_frame.to_csv(tmp_path / "whole.csv", index=False)
    parts = tmp_path / "parts"
    parts.mkdir()
    synthetic_frame.iloc[1000:].to_csv(parts / "a.csv", index=False)
    synthetic_frame.iloc[:1000].to_csv(parts / "b.csv", index=False)

    assert load_dataset(str(tmp_path / "whole.csv")).content_hash == (
        load_dataset(str(parts)).content_hash
    )


def test_too_few_rows_is_a_clear_error(synthetic_frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    synthetic_frame.head(50).to_csv(path, index=False)

    with pytest.raises(DataError, match=r"only 50 usable row\(s\) remain in .*tiny.csv"):
        load_dataset(str(path))


def test_missing_file_names_the_uri(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"

    with pytest.raises(DataSourceError, match=r"nothing exists at .*nowhere\.csv"):
        read_frame(str(missing))


def test_unreadable_file_names_the_uri(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")

    with pytest.raises(DataSourceError, match=r"broken\.parquet' is not a readable CSV or Parquet"):
        read_frame(str(path))


def test_unknown_scheme_lists_the_accepted_ones() -> None:
    with pytest.raises(DataSourceError, match="scheme 'gs'; accepted are a local path"):
        read_frame("gs://bucket/data.csv")


def test_s3_object_reads_like_the_local_file(
    synthetic_frame: pd.DataFrame, synthetic_csv: Path, s3_bucket: str
) -> None:
    import s3fs

    s3fs.S3FileSystem().put(str(synthetic_csv), f"{s3_bucket}/data/applications.csv")

    remote = load_dataset(f"s3://{s3_bucket}/data/")
    local = load_dataset(str(synthetic_csv))

    assert remote.files == [f"s3://{s3_bucket}/data/applications.csv"]
    assert remote.content_hash == local.content_hash


def test_missing_s3_object_names_the_uri(s3_bucket: str) -> None:
    with pytest.raises(DataSourceError, match=f"nothing exists at 's3://{s3_bucket}/absent/'"):
        read_frame(f"s3://{s3_bucket}/absent/")
    with pytest.raises(
        DataSourceError, match=r"nothing exists at 's3://nonexistent-bucket-x/a\.csv'"
    ):
        read_frame("s3://nonexistent-bucket-x/a.csv")
