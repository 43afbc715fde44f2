import pytest

from wit_builder.errors import WitError
from wit_builder.queries import wordnet

LICENSE = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
EXCERPT = {
    "noun": LICENSE + "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 023 @ 02083346 n 0000 | a member\n"
    "09044862 15 n 02 United_States 0 U.S. 0 000 | North American republic\n",
    "verb": LICENSE + "01883716 38 v 01 run 0 000 | move fast\n",
    "adj": "00001740 00 a 01 able 0 005 | (usually followed by `to')\n"
    "01384212 00 s 02 galore(ip) 0 in_abundance(p) 0 000 | in abundance\n",
    "adv": "00001740 02 r 01 a_cappella 0 000 | without musical accompaniment\n",
}


def write_excerpt(folder, files=EXCERPT):
    for name, text in files.items():
        (folder / f"data.{name}").write_text(text)
    return str(folder)


def test_excerpt_lemmas_synsets_and_markers(tmp_path):
    table, counts = wordnet.read_wordnet(write_excerpt(tmp_path))
    assert counts == {"noun": 2, "verb": 1, "adj": 2, "adv": 1}
    assert list(zip(table["query"].to_pylist(), table["synset_id"].to_pylist())) == [
        ("dog", "02084071-n"),
        ("domestic dog", "02084071-n"),
        ("Canis familiaris", "02084071-n"),
        ("United States", "09044862-n"),
        ("U.S.", "09044862-n"),
        ("run", "01883716-v"),
        ("able", "00001740-a"),
        ("galore", "01384212-s"),
        ("in abundance", "01384212-s"),
        ("a cappella", "00001740-r"),
    ]


def test_missing_file_and_bad_line_are_errors(tmp_path):
    files = dict(EXCERPT)
    del files["adv"]
    with pytest.raises(WitError, match="data.adv is missing"):
        wordnet.read_wordnet(write_excerpt(tmp_path, files))
    files["adv"] = "this is not wordnet\n"
    with pytest.raises(WitError, match=r"data.adv:1: not a WordNet data line"):
        wordnet.read_wordnet(write_excerpt(tmp_path, files))


def test_real_wordnet_30_counts():
    table, counts = wordnet.read_wordnet()
    assert dict(counts) == wordnet.EXPECTED_SYNSETS
    assert counts["noun"] == 82_115 and sum(counts.values()) == 117_659
    assert table.num_rows == 206_978  # lemma occurrences over all synsets of the data files
    assert len(set(table["query"].to_pylist())) == 148_730
