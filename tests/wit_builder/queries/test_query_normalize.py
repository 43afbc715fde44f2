from hypothesis import given
from hypothesis import strategies as st

from wit_builder.queries.normalize import SEPARATORS, is_normal, normalize


def test_nfc_whitespace_and_case():
    assert normalize("  Cafe\u0301\t\n de\u00a0 Flore ") == ("Café de Flore", None)
    assert normalize("Apple") == ("Apple", None)  # case is kept: the matcher is case-sensitive
    assert normalize("apple") == ("apple", None)


def test_separators_and_empty_are_dropped_with_a_reason():
    for char in SEPARATORS:
        assert normalize(f"St{char} Louis") == (None, "punctuation")
    assert normalize(" \t") == (None, "empty")
    assert normalize("rock 'n' roll") == ("rock 'n' roll", None)  # apostrophes and hyphens are not separators
    assert normalize("hot-dog") == ("hot-dog", None)


def test_separators_are_exactly_the_characters_metaclip_spaces_out():
    assert sorted(SEPARATORS) == sorted(",.;:?!`")
    assert normalize('"Weird Al" Yankovic') == ('"Weird Al" Yankovic', None)  # the quote stays on its word


def test_is_normal():
    assert is_normal("New York")
    assert not is_normal("New  York")
    assert not is_normal("U.S.")


@given(st.text(max_size=40))
def test_normal_form_is_idempotent_and_matchable(text):
    query, reason = normalize(text)
    if query is None:
        assert reason in ("empty", "punctuation")
    else:
        assert normalize(query) == (query, None) and is_normal(query)
        assert query == query.strip() and "  " not in query and not any(c in query for c in SEPARATORS)
