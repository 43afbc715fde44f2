"""Fixtures of the pipeline tests: the tiny shards that the study tests train on (the shard maker of tests/trainer)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))
from test_data import make_shards  # noqa: E402 - the shard maker of tests/trainer


@pytest.fixture(scope="module")
def good_shards(tmp_path_factory) -> str:
    """Two WebDataset shards of 12 good image-caption pairs each (24 in all), no corrupt member."""
    folder = tmp_path_factory.mktemp("shards")
    make_shards(folder, n_shards=2, per_shard=12, corrupt=False)
    return str(folder)
