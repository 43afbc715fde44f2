import math
from collections import Counter

import pytest

from wit_builder.queries import counts, prose
from wit_builder.queries.wikipedia import Page

NS = {0: "", 1: "Talk", 6: "File", 14: "Category"}
PREFIXES = prose.namespace_prefixes(NS)


def test_parse_article_prose_links_and_foreign_links():
    text = (
        "'''Cats''' are [[mammal|furry mammals]] of the [[Felidae#Family|Felidae]] family.{{citation needed}}"
        "<ref>Smith 2001, p. 4</ref>\n[[File:Cat.jpg|thumb|200px|A [[kitten]] asleep]]\n"
        "[[Category:Animals]] [[fr:Chat]] [[:Category:Pets]]"
    )
    text_out, links, dab = prose.parse_article(text, PREFIXES)
    assert not dab
    assert text_out == "Cats are furry mammals of the Felidae family."
    assert links == ["Mammal", "Felidae"]  # File/Category/interlanguage links and their captions are gone


@pytest.mark.parametrize(
    "template", ["{{disambiguation}}", "{{Disambig|geo}}", "{{hndis|Smith, John}}", "{{Place name disambiguation}}"]
)
def test_disambiguation_templates(template):
    assert prose.parse_article(f"'''X''' may refer to:\n* [[A]]\n{template}", PREFIXES)[2] is True


def pages():
    return [
        Page(1, "Cat", 0, None, "the cat sat. the [[cat]] ran, the dog sat."),
        Page(2, "Dog", 0, None, "the dog ran. [[Cat]] and [[Kitty]] and [[doggo]]."),
        Page(3, "Kitty", 0, "Cat", "#REDIRECT [[Cat]]"),
        Page(4, "Mercury (disambiguation)", 0, None, "Mercury may be a planet."),
        Page(5, "Bank", 0, None, "'''Bank''' may be:\n{{disambiguation}}"),
        Page(6, "Talk:Cat", 1, None, "cat cat cat"),
        Page(7, "Doggo", 0, "Dog", ""),
    ]


def test_partial_counts_classify_every_page():
    partial = counts.count_pages(pages(), NS)
    assert partial.stats == Counter(
        {"articles": 2, "skipped_redirect": 2, "skipped_disambiguation": 2, "skipped_namespace": 1, "tokens": 17}
    )
    assert partial.titles == [(1, "Cat"), (2, "Dog")]
    assert partial.redirects == [("Kitty", "Cat"), ("Doggo", "Dog")]
    assert partial.links == Counter({"Cat": 2, "Kitty": 1, "Doggo": 1})
    # "the cat sat. the cat ran, the dog sat." + "the dog ran. Cat and Kitty and doggo."
    assert partial.unigrams == Counter(
        {"the": 4, "cat": 2, "sat": 2, "dog": 2, "ran": 2, "Cat": 1, "and": 2, "Kitty": 1, "doggo": 1}
    )
    assert partial.bigrams[("the", "cat")] == 2 and partial.bigrams[("Kitty", "and")] == 1
    assert ("sat", "the") not in partial.bigrams  # the full stop separates them


def _reduced(tmp_path):
    """Two workers' partials, written and reduced like the pipeline does; also the counts summed by hand."""
    first = counts.count_pages(pages()[:1], NS)
    second = counts.count_pages(pages()[1:], NS)
    counts.write_tables(first.to_tables(), str(tmp_path), 0)
    counts.write_tables(second.to_tables(), str(tmp_path), 1)
    con = counts.connect(str(tmp_path), "256MB")
    return con, counts.reduce(con), first.unigrams + second.unigrams, first.bigrams + second.bigrams


# the two PMIs by hand: NLTK's (MetaCLIP's) in bits with N tokens only, ours in nats with B bigrams
HAND = {
    "metaclip": lambda c, ca, cb, n, b: math.log2(c * n / (ca * cb)),
    "ratio": lambda c, ca, cb, n, b: math.log((c / b) / ((ca / n) * (cb / n))),
}


@pytest.mark.parametrize("rule", ["metaclip", "ratio"])
def test_reduce_pmi_matches_the_formula(tmp_path, rule):
    con, reduced, unigrams, bigrams = _reduced(tmp_path)
    n, b = sum(unigrams.values()), sum(bigrams.values())
    assert (reduced.tokens, reduced.bigram_total, reduced.articles) == (n, b, 2) == (17, 12, 2)
    table = counts.bigrams_by_pmi(con, reduced, min_count=1, min_pmi=-100.0, rule=rule)
    got = {q: (c, p) for q, c, p in zip(*(table[k].to_pylist() for k in ("query", "count", "pmi")))}
    assert set(got) == {f"{x} {y}" for x, y in bigrams}
    expected = {f"{x} {y}": HAND[rule](c, unigrams[x], unigrams[y], n, b) for (x, y), c in bigrams.items()}
    for query, (count, pmi) in got.items():
        assert count == bigrams[tuple(query.split(" "))]
        assert pmi == pytest.approx(expected[query], rel=1e-12)
    # thresholds: count and pmi both apply, best first
    strict = counts.bigrams_by_pmi(con, reduced, min_count=2, min_pmi=1.0, rule=rule)
    assert strict["query"].to_pylist() == sorted(
        (q for q, p in expected.items() if got[q][0] >= 2 and p >= 1.0), key=lambda q: (-expected[q], q)
    )
    assert counts.unigrams_at_least(con, 4).to_pylist() == [{"query": "the", "count": 4}]


def test_pmi_by_hand_on_two_bigrams(tmp_path):
    """N = 17 tokens, B = 12 bigrams; c(the) = 4, c(cat) = 2, c(the cat) = 2; c(Kitty) = 1, c(and) = 2, c(Kitty and) = 1."""
    con, reduced, _, _ = _reduced(tmp_path)
    for rule, the_cat, kitty_and in [
        ("metaclip", math.log2(2 * 17 / (4 * 2)), math.log2(1 * 17 / (1 * 2))),
        ("ratio", math.log((2 / 12) / ((4 / 17) * (2 / 17))), math.log((1 / 12) / ((1 / 17) * (2 / 17)))),
    ]:
        rows = {r["query"]: r["pmi"] for r in counts.bigrams_by_pmi(con, reduced, 1, -100.0, rule=rule).to_pylist()}
        assert rows["the cat"] == pytest.approx(the_cat) and rows["Kitty and"] == pytest.approx(kitty_and)


def test_inlinks_resolve_one_redirect_hop(tmp_path):
    partial = counts.count_pages(pages(), NS)
    counts.write_tables(partial.to_tables(), str(tmp_path), 0)
    con = counts.connect(str(tmp_path), "256MB")
    counts.reduce(con)
    # Cat: [[cat]] from Cat, [[Cat]] from Dog, [[Kitty]] -> Cat;  Dog: [[doggo]] -> Doggo -> Dog
    assert counts.title_inlinks(con).to_pylist() == [{"title": "Cat", "inlinks": 3}, {"title": "Dog", "inlinks": 1}]


def test_empty_work_dir_reduces_to_nothing(tmp_path):
    con = counts.connect(str(tmp_path), "256MB")
    reduced = counts.reduce(con)
    assert (reduced.tokens, reduced.articles) == (0, 0)
    assert counts.bigrams_by_pmi(con, reduced, 1, 0.0, rule="metaclip").num_rows == 0
