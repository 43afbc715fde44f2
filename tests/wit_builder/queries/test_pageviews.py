import gzip

import pytest

from wit_builder.errors import WitError
from wit_builder.queries.titles import read_pageviews, title_query


def test_hourly_format_sums_english_desktop_and_mobile(tmp_path):
    path = tmp_path / "pageviews-20240101-000000.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(
            "en Albert_Einstein 50 0\nen.m Albert_Einstein 30 0\nde Albert_Einstein 99 0\n"
            "en Main_Page 1000 0\nen cat 3 0\n"
        )
    table, stats = read_pageviews(str(path))
    assert dict(zip(table["title"].to_pylist(), table["views"].to_pylist())) == {
        "Albert Einstein": 80,
        "Main Page": 1000,
        "Cat": 3,
    }
    assert stats == {"lines": 5, "used": 4, "skipped_other_wiki": 1}


def test_complete_daily_format(tmp_path):
    path = tmp_path / "pageviews-20240101-user.bz2"
    import bz2

    path.write_bytes(
        bz2.compress(
            b"en.wikipedia Paris 22989 desktop 40 A20B20\n"
            b"en.wikipedia Paris 22989 mobile-web 35 A35\n"
            b"fr.wikipedia Paris 681159 desktop 90 A90\n"
        )
    )
    table, stats = read_pageviews(str(path))
    assert table.to_pylist() == [{"title": "Paris", "views": 75}]
    assert stats["skipped_other_wiki"] == 1


def test_wrong_format_is_an_error(tmp_path):
    (tmp_path / "views.csv").write_text("title,views\nParis,10\nLondon,20\n")
    with pytest.raises(WitError, match="not a Wikimedia pageviews file"):
        read_pageviews(str(tmp_path / "views.csv"))
    (tmp_path / "german.txt").write_text("de Berlin 5 0\n")
    with pytest.raises(WitError, match="no English Wikipedia lines"):
        read_pageviews(str(tmp_path / "german.txt"))


def test_few_bad_lines_are_counted_not_fatal(tmp_path):
    lines = [f"en Title_{i} {i} 0" for i in range(200)] + ["garbage"]
    (tmp_path / "pv").write_text("\n".join(lines) + "\n")
    table, stats = read_pageviews(str(tmp_path / "pv"))
    assert table.num_rows == 200 and stats["skipped_bad_line"] == 1


def test_title_query_drops_the_qualifier():
    assert title_query("Mercury (planet)") == "Mercury"
    assert title_query("Mercury") == "Mercury"
    assert title_query("The (Band) Story") == "The (Band) Story"
