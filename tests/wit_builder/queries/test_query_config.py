"""Thresholds: count thresholds scale with the corpus and never exceed the paper's; the two bigram rules."""

import math

import pytest

from wit_builder.queries.config import REFERENCE_TOKENS, QueryConfig, bigram_thresholds


def test_count_thresholds_scale_down_but_never_above_the_papers():
    config = QueryConfig()
    assert config.scaled(100, 466_000, REFERENCE_TOKENS) == 3  # the floor
    assert config.scaled(100, REFERENCE_TOKENS // 2, REFERENCE_TOKENS) == 50
    assert config.scaled(100, REFERENCE_TOKENS, REFERENCE_TOKENS) == 100
    assert config.scaled(100, 2 * REFERENCE_TOKENS, REFERENCE_TOKENS) == 100  # a bigger dump keeps the paper's 100


def test_metaclip_rule_is_base_2_pmi_30_without_a_count_filter():
    config = QueryConfig()
    assert config.bigram_rule == "metaclip"
    assert bigram_thresholds(config, REFERENCE_TOKENS) == (1, 30.0)
    assert bigram_thresholds(config, 3 * REFERENCE_TOKENS) == (1, 30.0)  # never above 30
    count, pmi = bigram_thresholds(config, 466_000)
    assert count == 1 and pmi == pytest.approx(30 - math.log2(REFERENCE_TOKENS / 466_000))
    # the scaled threshold keeps its meaning: words seen k times each, always together, pass for k <= 4 at any size
    for tokens in (466_000, 10_000_000, REFERENCE_TOKENS):
        threshold = bigram_thresholds(config, tokens)[1]
        passing = [k for k in range(1, 10) if math.log2(k * tokens / (k * k)) >= threshold]
        assert passing == [1, 2, 3, 4], tokens


def test_ratio_rule_is_ln_ratio_with_a_scaled_count():
    config = QueryConfig(bigram_rule="ratio")
    assert bigram_thresholds(config, REFERENCE_TOKENS) == (100, pytest.approx(math.log(30)))
    assert bigram_thresholds(config, 466_000) == (3, pytest.approx(3.4012, abs=1e-4))
