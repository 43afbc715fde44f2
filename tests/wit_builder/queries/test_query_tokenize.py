from collections import Counter

from wit_builder.queries.tokenize import count_into, segments, tokens


def test_segments_break_at_matcher_separators_and_brackets():
    assert [s.strip() for s in segments("one two, three (four five) six\nseven")] == [
        "one two",
        "three",
        "four five",
        "six",
        "seven",
    ]


def test_tokens_keep_case_inner_apostrophes_and_hyphens():
    assert tokens("Don't stop O'Brien's well-known 1990s café — x_y & 3.5") == [
        "Don't",
        "stop",
        "O'Brien's",
        "well-known",
        "1990s",
        "café",
        "x",
        "y",
        "3",
        "5",
    ]


def test_count_into_exact():
    unigrams, bigrams = Counter(), Counter()
    total = count_into("the cat sat. the cat, the dog", unigrams, bigrams)
    assert total == 7
    assert unigrams == Counter({"the": 3, "cat": 2, "sat": 1, "dog": 1})
    # no bigram crosses '.' or ','
    assert bigrams == Counter({("the", "cat"): 2, ("cat", "sat"): 1, ("the", "dog"): 1})
