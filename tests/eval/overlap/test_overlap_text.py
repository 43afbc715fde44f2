"""Caption overlap: identical and near-identical captions are found with their exact Jaccard; unrelated ones are not."""

import pytest

from eval.overlap.text import jaccard, shingles, text_overlap
from wit_builder.errors import WitError

TRAIN = [
    "A red fox jumps over the lazy brown dog in the green field at dawn",
    "a photo of a tabby cat sleeping on a blue sofa next to the window in the afternoon sun",
    "Aerial view of a container ship entering the harbour of Rotterdam",
    "",
    "penguin",
]


def test_shingles_normalise_case_punctuation_and_width():
    assert shingles("The  CAT, sat!") == {"the cat sat"}
    assert shingles("Ｃａｔ on a mat") == {"cat on a", "on a mat"}  # full-width letters fold (NFKC)
    assert shingles("...") == set() and shingles("Penguin") == {"penguin"}


def test_exact_and_near_identical_captions_are_found_with_their_true_jaccard():
    evals = [
        "a red fox jumps over the lazy brown dog in the green field at dawn!",  # 0: same words, other case
        "A photo of a tabby cat sleeping on a blue sofa next to the window in the afternoon sun.",  # 1: same
        "a photo of a tabby cat sleeping on a blue sofa next to the window in the afternoon light",  # 2: one word
        "Close-up of a violin on a wooden table",  # 3: unrelated
        "an aerial view of container ships in a harbour",  # 4: shares words, not shingles
        "",
        "Penguin.",  # 6: a one-word prompt matches a one-word caption
    ]
    pairs = text_overlap(evals, TRAIN, threshold=0.8)
    found = {(p.eval_i, p.train_j) for p in pairs}
    assert found == {(0, 0), (1, 1), (2, 1), (6, 4)}
    by = {(p.eval_i, p.train_j): p for p in pairs}
    assert by[(0, 0)].jaccard == 1.0 and by[(1, 1)].jaccard == 1.0
    near = jaccard(shingles(evals[2]), shingles(TRAIN[1]))
    assert near == by[(2, 1)].jaccard == pytest.approx(16 / 18)  # 17 shingles each, 16 shared
    assert abs(by[(2, 1)].estimated_jaccard - near) < 0.15  # MinHash with 128 permutations: error ~ 0.03


def test_a_lower_threshold_admits_looser_matches_and_bad_thresholds_fail():
    evals = ["a red fox jumps over the lazy brown dog in the field"]
    assert text_overlap(evals, TRAIN, threshold=0.8) == []
    loose = text_overlap(evals, TRAIN, threshold=0.5)
    assert [(p.eval_i, p.train_j) for p in loose] == [(0, 0)] and loose[0].jaccard == pytest.approx(9 / 14)
    with pytest.raises(WitError, match="threshold"):
        text_overlap(evals, TRAIN, threshold=0)
