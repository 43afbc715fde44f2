"""The Ray pipeline: hand-written dumps (multistream and plain give the same list), provenance, bad input, and the real
gensim enwiki sample end to end."""

import math
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wit_builder" / "queries"))
from wiki_dumps import P, many_pages, write_multistream, write_plain  # noqa: E402

from pipelines import build_queries  # noqa: E402
from pipelines.cli import main as wit  # noqa: E402
from wit_builder.errors import WitError  # noqa: E402
from wit_builder.queries import build  # noqa: E402
from wit_builder.queries.config import QueryConfig  # noqa: E402

WORDNET = {
    "noun": "00000001 03 n 01 alpha 0 000 | first letter\n00000002 05 n 02 dog 0 U.S. 0 000 | test\n",
    "verb": "00000003 38 v 01 run 0 000 | move fast\n",
    "adj": "00000004 00 a 01 able 0 000 | able\n",
    "adv": "00000005 02 r 01 a_cappella 0 000 | unaccompanied\n",
}


def pages():
    return many_pages(250) + [
        P(1001, "Quantum", "quantum chromodynamics quantum chromodynamics quantum chromodynamics"),
        P(1002, "QCD", redirect="Quantum"),
        P(1003, "Physics A", "see [[QCD]] now."),
        P(1004, "Physics B", "see [[QCD]] now."),
        P(1005, "Physics C", "see [[QCD]] now."),
        P(1006, "Mercury (disambiguation)", "'''Mercury''' may be: [[Article 1]] [[Article 1]] [[Quantum]]"),
        P(1007, "Bank", "'''Bank''' may be:\n{{disambiguation}} [[Quantum]]"),
        P(1008, "Talk:Quantum", "quantum quantum [[Quantum]]", ns=1),
        P(1009, "Strange:Page", "quantum quantum [[Quantum]]", ns=7777),
        P(1010, "Zeta", "Zeta Reticuli. Zeta Reticuli."),  # a rare, exclusive pair: MetaCLIP's rule keeps it
    ]


@pytest.fixture()
def wordnet_dir(tmp_path):
    folder = tmp_path / "wordnet"
    folder.mkdir()
    for name, text in WORDNET.items():
        (folder / f"data.{name}").write_text(text)
    return str(folder)


def config(tmp_path, dump, wordnet_dir, **kwargs):
    settings = dict(
        out=str(tmp_path / "out" / "queries.parquet"),
        wiki_dump=dump,
        wordnet_dir=wordnet_dir,
        unigram_source="wiki",
        workers=2,
    )
    return QueryConfig(**{**settings, **kwargs})


def test_multistream_dump_exact_list_and_provenance(ray_session, tmp_path, wordnet_dir):
    dump, index, offsets = write_multistream(
        tmp_path / "enwiki-multistream.xml.bz2", tmp_path / "enwiki-multistream-index.txt.bz2", pages(), per_stream=100
    )
    meta = build_queries.main(config(tmp_path, dump, wordnet_dir, streams_per_task=1))
    assert meta["inputs"]["wiki_index"] == index and meta["inputs"]["layout"] == "multistream"  # found beside it
    assert meta["corpus"]["tasks"] == len(offsets)
    table = pq.read_table(tmp_path / "out" / "queries.parquet")
    rows = {r["query"]: r for r in table.to_pylist()}
    by_source = {
        s: {q for q, r in rows.items() if s in r["sources"]} for s in ("unigram", "bigram", "title", "wordnet")
    }
    assert by_source == {
        "unigram": {"alpha", "beta", "Article", "1", "links", "here", "quantum", "chromodynamics", "see", "now", "QCD"},
        "bigram": {"quantum chromodynamics", "see QCD", "QCD now", "Zeta Reticuli"},
        "title": {"Article 1", "Quantum"},
        "wordnet": {"alpha", "dog", "run", "able", "a cappella"},
    }
    assert table.num_rows == 21
    assert rows["alpha"]["sources"] == ["unigram", "wordnet"] and rows["alpha"]["unigram_count"] == 250
    assert rows["alpha"]["wordnet_synsets"] == ["00000001-n"]
    # MetaCLIP's PMI (NLTK, bits) by hand: N = 250*7 + 6 + 3*3 + 4 tokens; the threshold 30 drops by log2(4.5e9 / N)
    n, b = 1769, 1263
    assert meta["thresholds"] == {
        **meta["thresholds"],
        "bigram_rule": "metaclip",
        "pmi_unit": "log2",
        "min_bigram_count": 1,
        "min_pmi": pytest.approx(30 - math.log2(4.5e9 / n)),
    }
    assert rows["see QCD"]["bigram_count"] == 3
    assert rows["see QCD"]["bigram_pmi"] == pytest.approx(math.log2(3 * n / (3 * 3)))  # 9.2 >= 8.72
    assert rows["Zeta Reticuli"]["bigram_pmi"] == pytest.approx(math.log2(2 * n / (2 * 2)))
    assert "alpha beta" not in rows  # log2(250 n / (250 * 250)) = 2.8: frequent words are not a collocation
    # in-links: every Article page links Article 1; Quantum is reached through the QCD redirect (disambiguation,
    # talk and unknown-namespace pages do not count)
    assert rows["Article 1"]["title_popularity"] == 250 and rows["Quantum"]["title_popularity"] == 3
    assert meta["title_popularity"]["kind"] == "inlinks" and "proxy" in meta["title_popularity"]["note"]
    corpus = meta["corpus"]
    assert (corpus["articles"], corpus["tokens"], corpus["bigrams"]) == (255, n, b)
    assert corpus["skipped_redirect"] == 1 and corpus["skipped_disambiguation"] == 2
    assert corpus["skipped_namespace"] == 1 and corpus["skipped_unknown_namespace"] == 1
    assert corpus["pages_read"] == len(pages())
    assert meta["thresholds"]["min_unigram_count"] == 3 and meta["thresholds"]["min_title_inlinks"] == 3
    assert meta["report"]["wordnet"]["dropped_punctuation"] == 1  # U.S.
    assert sum(r["first"] for r in meta["report"].values()) == 21
    assert build.read_metadata(str(tmp_path / "out" / "queries.parquet"))["rows"] == 21

    # the plain single-stream export of the same pages gives the very same list
    plain = write_plain(tmp_path / "enwiki.xml.bz2", pages())
    meta_plain = build_queries.main(
        config(tmp_path, plain, wordnet_dir, out=str(tmp_path / "p.parquet"), pages_per_task=40)
    )
    assert meta_plain["inputs"]["layout"] == "single-stream" and meta_plain["corpus"]["tasks"] == 7
    assert pq.read_table(tmp_path / "p.parquet").to_pylist() == table.to_pylist()

    # the ratio rule: ln p(ab)/(p(a)p(b)) >= ln 30 and a count of at least 3 (100 scaled, floored): no Zeta Reticuli
    ratio = build_queries.main(
        config(tmp_path, plain, wordnet_dir, out=str(tmp_path / "r.parquet"), bigram_rule="ratio")
    )
    assert (ratio["thresholds"]["pmi_unit"], ratio["thresholds"]["min_bigram_count"]) == ("ln", 3)
    assert ratio["thresholds"]["min_pmi"] == pytest.approx(math.log(30))
    ratio_rows = {r["query"]: r for r in pq.read_table(tmp_path / "r.parquet").to_pylist()}
    assert {q for q, r in ratio_rows.items() if "bigram" in r["sources"]} == {
        "quantum chromodynamics",
        "see QCD",
        "QCD now",
    }
    assert ratio_rows["see QCD"]["bigram_pmi"] == pytest.approx(math.log((3 / b) / ((3 / n) * (3 / n))))  # 6.7


def test_pageviews_rank_titles_and_cli_with_sql_view(ray_session, tmp_path, wordnet_dir, capsys):
    dump = write_plain(tmp_path / "enwiki.xml.bz2", pages())
    (tmp_path / "pv.txt").write_text("en Quantum 80 0\nen.m Physics_A 69 0\nen Physics_B 70 0\nde Article_1 900 0\n")
    out = tmp_path / "out"
    code = wit(
        [
            "queries",
            "--out",
            str(out / "queries.parquet"),
            "--wiki-dump",
            dump,
            "--wordnet",
            wordnet_dir,
            "--pageviews",
            str(tmp_path / "pv.txt"),
            "--unigram-source",
            "wiki",
            "--workers",
            "2",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "MetaCLIP" in printed and "61,235" in printed and "titles ranked by views" in printed
    meta = build.read_metadata(str(out / "queries.parquet"))
    assert meta["title_popularity"]["kind"] == "views" and meta["thresholds"]["min_title_views"] == 70
    assert (
        wit(
            [
                "sql",
                str(out),
                "SELECT query, title_popularity FROM queries WHERE title_popularity IS NOT NULL ORDER BY query",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == ["query,title_popularity", "Physics B,70", "Quantum,80"]


def test_bad_pageviews_fail_before_counting(tmp_path, wordnet_dir):
    (tmp_path / "pv.csv").write_text("title,views\nQuantum,80\n")
    with pytest.raises(WitError, match="not a Wikimedia pageviews file"):
        build_queries.main(
            QueryConfig(out=str(tmp_path / "q.parquet"), pageviews=str(tmp_path / "pv.csv"), wordnet_dir=wordnet_dir)
        )


def test_truncated_dump_is_an_error_not_a_short_list(ray_session, tmp_path, wordnet_dir):
    dump = write_plain(tmp_path / "enwiki.xml.bz2", pages())
    data = Path(dump).read_bytes()
    Path(dump).write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(WitError, match="truncated or corrupt"):
        build_queries.main(config(tmp_path, dump, wordnet_dir))
    assert not (tmp_path / "out" / "queries.parquet").exists()
    assert list((tmp_path / "out").iterdir()) == []  # the temporary partial counts are gone too


def test_damaged_multistream_block_is_an_error_from_the_worker(ray_session, tmp_path, wordnet_dir):
    dump, index, offsets = write_multistream(
        tmp_path / "enwiki-multistream.xml.bz2", tmp_path / "enwiki-multistream-index.txt.bz2", pages()
    )
    data = bytearray(Path(dump).read_bytes())
    data[offsets[1] + 200 : offsets[1] + 260] = b"\x00" * 60  # garbage inside the second page stream
    Path(dump).write_bytes(bytes(data))
    with pytest.raises(WitError, match="truncated or corrupt") as caught:
        build_queries.main(config(tmp_path, dump, wordnet_dir, streams_per_task=1))
    assert f"@{offsets[1]}" in str(caught.value) or dump in str(caught.value)
    assert not (tmp_path / "out" / "queries.parquet").exists()


def test_real_gensim_sample_through_ray(ray_session, tmp_path):
    """The real enwiki sample, real WordNet and wordfreq: the offline demo's list."""
    out = tmp_path / "queries.parquet"
    meta = build_queries.main(QueryConfig(out=str(out), workers=2))
    corpus = meta["corpus"]
    assert corpus["pages_read"] == 206 and corpus["articles"] == 98
    # 99 redirects in the article namespace, 1 page in Wikipedia:, 8 disambiguation pages ({{disambiguation}}, ...)
    assert (corpus["skipped_redirect"], corpus["skipped_namespace"], corpus["skipped_disambiguation"]) == (99, 1, 8)
    assert corpus["tasks"] == 6 and corpus["compressed_bytes"] == 1_695_871
    assert (
        corpus["articles"] + corpus["skipped_redirect"] + corpus["skipped_namespace"] + corpus["skipped_disambiguation"]
        == corpus["pages_read"]
    )
    assert meta["unigram_source"] == "wordfreq"  # 0.5M tokens are far too few for "≥100 in English Wikipedia"
    assert meta["wordnet_synsets"] == {"noun": 82_115, "verb": 13_767, "adj": 18_156, "adv": 3_621}
    report = meta["report"]
    assert all(report[s]["admitted"] > 0 for s in ("unigram", "bigram", "title", "wordnet"))
    table = pq.read_table(out)
    assert table.num_rows == meta["rows"] == sum(r["first"] for r in report.values())
    assert table.num_rows <= 500_000
    queries = table["query"].to_pylist()
    assert len(set(queries)) == len(queries)
    rows = {
        r["query"]: r for r in table.to_pylist() if r["query"] in ("United States", "Dalai Lama", "the", "Aristotle")
    }
    # MetaCLIP's bigram rule keeps rare, exclusive pairs (both words seen 4 times, always together) and not frequent
    # ones: "United States" (312 times) comes from WordNet only
    threshold = meta["thresholds"]["min_pmi"]
    assert threshold == pytest.approx(30 - math.log2(4.5e9 / corpus["tokens"]))
    assert rows["Dalai Lama"]["sources"] == ["bigram", "wordnet"] and rows["Dalai Lama"]["bigram_count"] == 4
    assert rows["Dalai Lama"]["bigram_pmi"] == pytest.approx(math.log2(4 * corpus["tokens"] / (4 * 4)))
    assert rows["Dalai Lama"]["bigram_pmi"] >= threshold
    assert rows["United States"]["sources"] == ["wordnet"]
    assert rows["the"]["sources"] == ["unigram"] and rows["the"]["unigram_count"] > 100_000_000
    assert rows["Aristotle"]["sources"] == ["title", "wordnet"] and rows["Aristotle"]["title_popularity"] >= 3


REPO = Path(__file__).resolve().parents[2]


def test_script_has_the_same_flags_as_the_subcommand():
    import subprocess

    done = subprocess.run(
        [sys.executable, "pipelines/build_queries.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--wiki-dump", "--wordnet", "--pageviews", "--target-size", "--unigram-source", "--workers"):
        assert flag in done.stdout


@pytest.mark.slow
def test_script_runs_as_a_ray_job_entrypoint(tmp_path, wordnet_dir):
    """`python pipelines/build_queries.py ...` (what `ray job submit -- ...` runs) in a fresh process with its own Ray."""
    import os
    import subprocess

    dump, _, _ = write_multistream(
        tmp_path / "enwiki-multistream.xml.bz2", tmp_path / "enwiki-multistream-index.txt.bz2", pages()
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [
            sys.executable,
            "pipelines/build_queries.py",
            "--out",
            str(tmp_path / "q.parquet"),
            "--wiki-dump",
            dump,
            "--wordnet",
            wordnet_dir,
            "--unigram-source",
            "wiki",
            "--workers",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "wrote 21 queries" in done.stdout
    assert pq.read_table(tmp_path / "q.parquet").num_rows == 21


@pytest.mark.slow
def test_multistream_dump_on_s3(ray_session, tmp_path, wordnet_dir, s3_env):  # noqa: F811
    """A dump and its index in a real S3 bucket (SeaweedFS on loopback): workers read their byte ranges from S3."""
    server = s3_env
    dump, index, offsets = write_multistream(
        tmp_path / "enwiki-multistream.xml.bz2", tmp_path / "enwiki-multistream-index.txt.bz2", pages()
    )
    client = server.client()
    for path in (dump, index):
        client.upload_file(path, server.bucket, f"dumps/{Path(path).name}")
    uri = f"s3://{server.bucket}/dumps/enwiki-multistream.xml.bz2"
    meta = build_queries.main(config(tmp_path, uri, wordnet_dir, streams_per_task=1))
    assert meta["inputs"]["wiki_index"] == uri.replace(".xml.bz2", "-index.txt.bz2")
    assert meta["corpus"]["tasks"] == len(offsets) and meta["rows"] == 21
    local = build_queries.main(config(tmp_path, dump, wordnet_dir, out=str(tmp_path / "local.parquet")))
    assert (
        pq.read_table(tmp_path / "local.parquet").to_pylist()
        == pq.read_table(tmp_path / "out" / "queries.parquet").to_pylist()
    )
    assert local["rows"] == 21
