import bz2
from collections import Counter

import pytest
from wiki_dumps import NAMESPACES, P, header, many_pages, page_xml, write_multistream, write_plain

from wit_builder.errors import WitError
from wit_builder.queries import wikipedia

PAGES = [
    P(1, "Cat", "The '''cat''' is a [[mammal]]."),
    P(2, "Kitty", redirect="Cat"),
    P(3, "Talk:Cat", "chatter", ns=1),
    P(4, "Dog", "A dog & a <b>bone</b>."),
]


def read_all(path, header_out=None):
    stats = Counter()
    with open(path, "rb") as handle:
        pages = list(wikipedia.iter_pages(handle, str(path), stats, header_out))
    return pages, stats


def test_plain_dump_pages_fields_and_header(tmp_path):
    path = write_plain(tmp_path / "d.xml.bz2", PAGES)
    got_header = {}
    pages, stats = read_all(path, got_header)
    assert [(p.page_id, p.title, p.ns, p.redirect) for p in pages] == [
        (1, "Cat", 0, None),
        (2, "Kitty", 0, "Cat"),
        (3, "Talk:Cat", 1, None),
        (4, "Dog", 0, None),
    ]
    assert pages[3].text == "A dog & a <b>bone</b>."
    assert got_header["namespaces"] == NAMESPACES
    assert stats == Counter({"pages_read": 4})


def test_unknown_namespace_is_a_counted_skip(tmp_path):
    path = write_plain(tmp_path / "d.xml.bz2", PAGES + [P(5, "Odd:Thing", "x", ns=7777)])
    pages, stats = read_all(path)
    assert [p.page_id for p in pages] == [1, 2, 3, 4]
    assert stats["skipped_unknown_namespace"] == 1 and stats["pages_read"] == 5


def test_truncated_bz2_is_an_error(tmp_path):
    path = write_plain(tmp_path / "d.xml.bz2", many_pages(300))
    data = open(path, "rb").read()
    (tmp_path / "cut.xml.bz2").write_bytes(data[: len(data) // 2])
    with pytest.raises(WitError, match="truncated or corrupt"):
        read_all(tmp_path / "cut.xml.bz2")


def test_malformed_xml_is_an_error(tmp_path):
    xml = header() + page_xml(PAGES[0]) + "  <page><title>Broken</title></pag>\n</mediawiki>"
    (tmp_path / "bad.xml.bz2").write_bytes(bz2.compress(xml.encode()))
    with pytest.raises(WitError, match="malformed XML"):
        read_all(tmp_path / "bad.xml.bz2")


def test_non_utf8_bytes_are_an_error(tmp_path):
    xml = (header() + page_xml(P(1, "Caf", "x"))).encode() + b"  <page><title>Caf\xe9</title></page>\n</mediawiki>"
    (tmp_path / "latin1.xml.bz2").write_bytes(bz2.compress(xml))
    with pytest.raises(WitError, match="not UTF-8"):
        read_all(tmp_path / "latin1.xml.bz2")


def test_multistream_ranges_give_every_page_once(tmp_path):
    pages = many_pages(250)
    dump, index, offsets = write_multistream(
        tmp_path / "m-multistream.xml.bz2", tmp_path / "m-multistream-index.txt.bz2", pages, per_stream=100
    )
    with open(index, "rb") as handle:
        assert wikipedia.read_index(handle, index) == offsets
    assert len(offsets) == 3
    size = (tmp_path / "m-multistream.xml.bz2").stat().st_size
    ranges = wikipedia.stream_ranges(offsets, size, 2)
    assert ranges == [(offsets[0], offsets[2]), (offsets[2], size)]
    with open(dump, "rb") as handle:
        head = wikipedia.read_header(handle, dump)
        assert head["namespaces"] == NAMESPACES
        got, stats = [], Counter()
        for start, end in ranges:
            got += list(wikipedia.iter_range_pages(handle, start, end, head["namespaces"], stats, dump))
    assert [p.page_id for p in got] == [p.page_id for p in pages]
    assert got[7].text == pages[7].text and got[7].title == "Article 8"
    # 3 page streams + the footer stream; every compressed byte after the header is accounted for
    assert stats["streams"] == 4 and stats["compressed_bytes"] == size - offsets[0]


def test_multistream_truncated_stream_is_an_error(tmp_path):
    dump, index, offsets = write_multistream(
        tmp_path / "m.xml.bz2", tmp_path / "m-index.txt.bz2", many_pages(250), per_stream=100
    )
    data = open(dump, "rb").read()
    (tmp_path / "cut.xml.bz2").write_bytes(data[: offsets[2] - 10])
    with open(tmp_path / "cut.xml.bz2", "rb") as handle, pytest.raises(WitError, match="truncated or corrupt"):
        list(wikipedia.iter_range_pages(handle, offsets[1], offsets[2], None, Counter(), "cut"))


def test_bad_index_line_is_an_error(tmp_path):
    (tmp_path / "i.txt").write_text("123:4:Title\nnot an index line\n")
    with open(tmp_path / "i.txt", "rb") as handle, pytest.raises(WitError, match="line 2"):
        wikipedia.read_index(handle, "i.txt")


def test_first_stream_without_header_is_an_error(tmp_path):
    (tmp_path / "x.xml.bz2").write_bytes(bz2.compress(page_xml(PAGES[0]).encode()))
    with open(tmp_path / "x.xml.bz2", "rb") as handle, pytest.raises(WitError, match="siteinfo"):
        wikipedia.read_header(handle, "x.xml.bz2")
