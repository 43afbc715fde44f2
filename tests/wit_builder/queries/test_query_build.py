import pyarrow as pa
import pytest

from wit_builder.queries import build
from wit_builder.queries.normalize import is_normal


def sources():
    return {
        "unigram": pa.table(
            {"query": ["dog", "Paris", "cafe\u0301", "café", "U.S.", "the"], "count": [50, 40, 3, 4, 9, 99]}
        ),
        "bigram": pa.table({"query": ["hot  dog", "New York"], "count": [7, 8], "pmi": [4.5, 6.0]}),
        "title": pa.table({"query": ["Paris", "New York", "Mercury"], "popularity": [10, 20, 5]}),
        "wordnet": pa.table(
            {
                "query": ["dog", "dog", "hot dog", "Canis familiaris", "St. Louis"],
                "synset_id": ["02084071-n", "10114209-n", "07697537-n", "02084071-n", "09119976-n"],
            }
        ),
    }


def test_provenance_dedupe_and_statistics():
    table, report = build.merge(sources(), target_size=100)
    rows = {r["query"]: r for r in table.to_pylist()}
    assert list(rows) == sorted(rows)
    assert set(rows) == {"dog", "Paris", "café", "the", "hot dog", "New York", "Mercury", "Canis familiaris"}
    assert rows["dog"]["sources"] == ["unigram", "wordnet"]
    assert rows["dog"]["wordnet_synsets"] == ["02084071-n", "10114209-n"] and rows["dog"]["unigram_count"] == 50
    assert rows["café"]["unigram_count"] == 7  # NFC merges the two spellings; counts add up
    assert rows["hot dog"]["sources"] == ["bigram", "wordnet"] and rows["hot dog"]["bigram_pmi"] == 4.5
    assert rows["New York"]["sources"] == ["bigram", "title"] and rows["New York"]["title_popularity"] == 20
    assert rows["Paris"]["sources"] == ["unigram", "title"] and rows["Paris"]["bigram_pmi"] is None
    assert rows["Mercury"] == {
        "query": "Mercury",
        "sources": ["title"],
        "unigram_count": None,
        "bigram_pmi": None,
        "bigram_count": None,
        "title_popularity": 5,
        "wordnet_synsets": None,
    }
    assert all(is_normal(q) for q in rows)
    assert report["unigram"] == {
        "input": 6,
        "dropped_punctuation": 1,
        "admitted": 4,
        "new": 4,
        "in_list": 4,
        "first": 4,
    }
    assert report["wordnet"] == {
        "input": 5,
        "dropped_punctuation": 1,
        "admitted": 3,
        "new": 1,
        "in_list": 3,
        "first": 1,
    }
    assert report["title"]["new"] == 1 and report["title"]["in_list"] == 3
    assert sum(r["first"] for r in report.values()) == table.num_rows


def test_cap_keeps_wordnet_and_shares_the_rest_like_metaclip():
    table, report = build.merge(sources(), target_size=5)
    kept = set(table["query"].to_pylist())
    # WordNet entries are protected (3); the 2 other places go 1.22 : 0.49 : 0.30 to unigram : bigram : title,
    # i.e. 1 + 0 + 0 and the spare place to the largest remainder (bigram); each source keeps its best entries
    assert kept == {"dog", "hot dog", "Canis familiaris", "the", "New York"}
    assert report["unigram"]["dropped_cap"] == 2  # Paris, café
    assert report["title"]["dropped_cap"] == 2 and "dropped_cap" not in report["bigram"]  # Paris, Mercury
    assert table.num_rows == 5


def test_quotas_water_filling():
    weights = build.METACLIP_TOTALS
    assert build.quotas(100, {"unigram": 1000, "bigram": 1000, "title": 1000}, weights) == {
        "unigram": 61,
        "bigram": 24,
        "title": 15,
    }
    # a small source keeps all it has and leaves the rest of its share to the others
    assert build.quotas(100, {"unigram": 1000, "bigram": 3, "title": 1000}, weights) == {
        "unigram": 78,
        "bigram": 3,
        "title": 19,
    }
    assert build.quotas(10, {"unigram": 2, "bigram": 3, "title": 1}, weights) == {"unigram": 2, "bigram": 3, "title": 1}
    assert build.quotas(0, {"unigram": 5, "bigram": 5, "title": 5}, weights) == {"unigram": 0, "bigram": 0, "title": 0}


def test_write_and_metadata_round_trip(tmp_path):
    table, report = build.merge(sources(), target_size=100)
    build.write(table, str(tmp_path / "queries.parquet"), {"report": report, "thresholds": {"min_pmi": 3.4}})
    assert build.read_metadata(str(tmp_path / "queries.parquet"))["report"]["wordnet"]["first"] == 1
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "queries.parquet").schema.remove_metadata() == build.SCHEMA
    text = build.summary(report, table.num_rows)
    assert "wordnet" in text and "86,654" in text and "total" in text


EMPTY = pa.table({"query": pa.array([], pa.string()), "count": pa.array([], pa.int64())})


@pytest.mark.parametrize("empty", [None, EMPTY])
def test_missing_source(empty):
    data = sources()
    data["unigram"] = empty
    table, report = build.merge(data, target_size=100)
    assert report["unigram"] == {} and "the" not in table["query"].to_pylist()
