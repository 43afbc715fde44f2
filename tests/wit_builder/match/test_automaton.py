"""The token automaton gives exactly MetaCLIP's reference matches (property test) and its documented edge cases."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wit_builder.errors import WitError
from wit_builder.match.automaton import TokenAutomaton
from wit_builder.match.reference import match_reference, spaced

# a small alphabet so that random queries really occur in random texts; every separator and whitespace kind included
ALPHABET = "abA ,.;:?!\"`\t\n\r-'é"
texts = st.text(alphabet=ALPHABET, max_size=40)
queries = st.lists(st.text(alphabet=ALPHABET, max_size=6), max_size=25, unique=True)


@settings(max_examples=400, deadline=None)
@given(queries, st.lists(st.one_of(texts, st.none()), max_size=12))
def test_equals_reference_on_random_texts_and_queries(entries, batch):
    got = TokenAutomaton(entries).match(batch).to_pylist()
    want = [match_reference(t, entries) if t is not None else [] for t in batch]
    assert got == want


WORDS = st.sampled_from(["dog", "hot", "hot dog", "New York", "York", "York City", "a", "the", "cat", "Dog", "dogs"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(WORDS, unique=True, min_size=1),
    st.lists(
        st.lists(
            st.sampled_from(
                ["dog", "hot", "New", "York", "City", "a", ",", ".", "!", "(dog)", "dog's", "  ", "\n", "cat", "Dog"]
            ),
            max_size=15,
        ).map(" ".join),
        max_size=10,
    ),
)
def test_equals_reference_on_word_like_texts(entries, batch):
    assert TokenAutomaton(entries).match(batch).to_pylist() == [match_reference(t, entries) for t in batch]


def test_documented_word_boundaries():
    entries = ["dog", "hot dog", "New York", "York City"]
    auto = TokenAutomaton(entries)
    got = auto.match(
        ["dog,", "a dog.", "dogs", "(dog)", "dog's", "hot-dog", "Dog", "hot dog in New York City", "dog dog dog"]
    ).to_pylist()
    assert got == [[0], [0], [], [], [], [], [], [0, 1, 2, 3], [0]]


def test_spacing_rule_is_metaclips():
    """MetaCLIP's spacing() wraps , . ; : ? ! and the backtick, turns tab/newline/CR into spaces, and leaves the double
    quote (and every other character) where it is."""
    assert spaced('a,b "c"\td') == ' a , b "c" d '
    assert spaced("x.y;z:w?v!u`t\r\ns") == " x . y ; z : w ? v ! u ` t  s "
    for text, matches in [
        ('dog"', False),
        ('"dog"', False),
        ('"dog', False),
        ("dog,", True),
        ("dog.", True),
        ("dog`", True),
        ("dog!", True),
        ("dog\n", True),
        ("(dog)", False),
        ("dog's", False),
    ]:
        assert (match_reference(text, ["dog"]) == [0]) is matches, text
        assert (TokenAutomaton(["dog"]).match([text]).to_pylist() == [[0]]) is matches, text


QUOTE_CASES = [
    'the "dog" ran',
    '"dog"',
    'say "hi", dog',
    'a "hot dog".',
    '""',
    '" "',
    'dog "',
    '" dog',
    'dog""dog',
    '"New York" City',
    'New "York City"',
    '"a" "b"',
    'he said: "dog!"',
    "`dog`",
    '"`dog`"',
]
QUOTE_ENTRIES = [
    "dog",
    '"dog"',
    '"dog',
    'dog"',
    "hot dog",
    '"hot dog"',
    "hi",
    '"hi"',
    '"hi",',
    "New York",
    '"New York"',
    "York City",
    '"',
    '""',
    "a",
    '"a"',
    '"b"',
    "said",
    "`dog`",
]


def test_quotes_agree_with_the_reference_on_hand_cases():
    got = TokenAutomaton(QUOTE_ENTRIES).match(QUOTE_CASES).to_pylist()
    assert got == [match_reference(t, QUOTE_ENTRIES) for t in QUOTE_CASES]
    named = dict(zip(QUOTE_CASES, ([QUOTE_ENTRIES[i] for i in ids] for ids in got)))
    assert named['the "dog" ran'] == ['"dog"']  # the quotes stay on the word, as in MetaCLIP
    assert named['"dog"'] == ['"dog"']
    assert named['say "hi", dog'] == ["dog", '"hi"']  # the comma is wrapped, the quote is not
    assert named['"New York" City'] == ['"New York"']


QUOTY = st.text(alphabet='"`,. dogaA\t', max_size=30)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.text(alphabet='"`,. doga', min_size=1, max_size=8), max_size=20, unique=True),
    st.lists(QUOTY, max_size=10),
)
def test_quote_heavy_texts_equal_the_reference(entries, batch):
    entries = entries + [e for e in ('"', '"dog"', "dog", 'a "dog"') if e not in entries]
    assert TokenAutomaton(entries).match(batch).to_pylist() == [match_reference(t, entries) for t in batch]


def test_chunked_and_empty_inputs():
    auto = TokenAutomaton(["x"])
    assert auto.match(pa.chunked_array([["x y"], ["y x"]])).to_pylist() == [[0], [0]]
    assert auto.match([]).to_pylist() == []
    assert TokenAutomaton([]).match(["x"]).to_pylist() == [[]]


def test_duplicate_queries_are_refused():
    with pytest.raises(WitError, match="twice"):
        TokenAutomaton(["dog", "cat", "dog"])


def test_pickles_for_ray_workers():
    auto = pickle.loads(pickle.dumps(TokenAutomaton(["hot dog", "dog"])))
    assert auto.match(["a hot dog"]).to_pylist() == [[0, 1]]
