import math
from collections import Counter

import pytest

from wit_builder.queries import counts, prose
from wit_builder.queries.wikipedia import Page

NS = {0: "", 1: "Talk", 6: "File", 14: "Category"}
PREFIXES = prose.namespace_prefixes(NS)


def test_parse_article_prose_links_and_foreign_links():
    text = ("'''Cats''' are [[mammal|furry mammals]] of the [[Felidae#Family|Felidae]] family.{{citation needed}}"
            "<ref>Smith 2001, p. 4</ref>\n[[File:Cat.jpg|thumb|200px|A [[kitten]] asleep]]\n"
            "[[Category:Animals]] [[fr:Chat]] [[:Category:Pets]]")
    text_out, links, dab = prose.parse_article(text, PREFIXES)
    assert not dab
    assert text_out == "Cats are furry mammals of the Felidae family."
    assert links == ["Mammal", "Felidae"]  # File/Category/interlanguage links and their captions are gone


@pytest.mark.parametrize("template", ["{{disambiguation}}", "{{Disambig|geo}}", "{{hndis|Smith, John}}",
                                      "{{Place name disambiguation}}"])
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
    assert partial.stats == Counter({"articles": 2, "skipped_redirect": 2, "skipped_disambiguation": 2,
                                     "skipped_namespace": 1, "tokens": 17})
    assert partial.titles == [(1, "Cat"), (2, "Dog")]
    assert partial.redirects == [("Kitty", "Cat"), ("Doggo", "Dog")]
    assert partial.links == Counter({"Cat": 2, "Kitty": 1, "Doggo": 1})
    # "the cat sat. the cat ran, the dog sat." + "the dog ran. Cat and Kitty and doggo."
    assert partial.unigrams == Counter({"the": 4, "cat": 2, "sat": 2, "dog": 2, "ran": 2, "Cat": 1, "and": 2,
                                        "Kitty": 1, "doggo": 1})
    assert partial.bigrams[("the", "cat")] == 2 and partial.bigrams[("Kitty", "and")] == 1
    assert ("sat", "the") not in partial.bigrams  # the full stop separates them


def test_reduce_pmi_matches_the_formula(tmp_path):
    # two workers' partials, written and reduced like the pipeline does
    first = counts.count_pages(pages()[:1], NS)
    second = counts.count_pages(pages()[1:], NS)
    counts.write_tables(first.to_tables(), str(tmp_path), 0)
    counts.write_tables(second.to_tables(), str(tmp_path), 1)
    con = counts.connect(str(tmp_path), "256MB")
    reduced = counts.reduce(con)
    unigrams = first.unigrams + second.unigrams
    bigrams = first.bigrams + second.bigrams
    n, b = sum(unigrams.values()), sum(bigrams.values())
    assert (reduced.tokens, reduced.bigram_total, reduced.articles) == (n, b, 2)
    table = counts.bigrams_by_pmi(con, reduced, min_count=1, min_pmi=-100.0)
    got = {q: (c, p) for q, c, p in zip(*(table[k].to_pylist() for k in ("query", "count", "pmi")))}
    assert set(got) == {f"{x} {y}" for x, y in bigrams}
    for (x, y), c in bigrams.items():
        expected = math.log((c / b) / ((unigrams[x] / n) * (unigrams[y] / n)))
        assert got[f"{x} {y}"][0] == c
        assert got[f"{x} {y}"][1] == pytest.approx(expected, rel=1e-12)
    # thresholds: count and pmi both apply
    strict = counts.bigrams_by_pmi(con, reduced, min_count=2, min_pmi=math.log(2.0))
    assert strict["query"].to_pylist() == sorted(
        (f"{x} {y}" for (x, y), c in bigrams.items()
         if c >= 2 and math.log((c / b) / ((unigrams[x] / n) * (unigrams[y] / n))) >= math.log(2.0)),
        key=lambda q: -got[q][1])
    assert counts.unigrams_at_least(con, 4).to_pylist() == [{"query": "the", "count": 4}]


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
    assert counts.bigrams_by_pmi(con, reduced, 1, 0.0).num_rows == 0
