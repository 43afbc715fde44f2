"""Caption and prompt overlap between evaluation and training texts: MinHash LSH over word 3-shingles of normalised
text finds candidate pairs in sub-quadratic time; each candidate's true Jaccard is recomputed and kept at >= threshold."""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

from datasketch import MinHash, MinHashLSH

from wit_builder.errors import WitError

NUM_PERM = 128
SHINGLE = 3
_WORD = re.compile(r"\w+")


class TextPair(NamedTuple):
    """An evaluation text i and a training text j whose shingle sets overlap: MinHash estimate and true Jaccard."""

    eval_i: int
    train_j: int
    estimated_jaccard: float
    jaccard: float


def shingles(text: str, size: int = SHINGLE) -> set[str]:
    """Word `size`-shingles of NFKC-normalised, case-folded text without punctuation; a shorter text is one shingle."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text or "").casefold())
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def text_overlap(eval_texts: list[str], train_texts: list[str], threshold: float = 0.8) -> list[TextPair]:
    """Every (evaluation, training) text pair whose shingle sets have Jaccard >= threshold, sorted by (eval_i, -jaccard,
    train_j). Empty texts never match. MinHash (128 permutations) LSH proposes the candidates, so a pair just above
    the threshold can be missed with small probability; a reported pair's Jaccard is exact."""
    if not 0.0 < threshold <= 1.0:
        raise WitError(f"the Jaccard threshold must be in (0, 1], got {threshold}")
    train_sets = [shingles(t) for t in train_texts]
    eval_sets = [shingles(t) for t in eval_texts]
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    train_hashes = _minhashes(train_sets)
    with lsh.insertion_session() as session:
        for j, (s, h) in enumerate(zip(train_sets, train_hashes)):
            if s:
                session.insert(j, h, check_duplication=False)
    pairs = []
    for i, (s, h) in enumerate(zip(eval_sets, _minhashes(eval_sets))):
        if not s:
            continue
        for j in lsh.query(h):
            true = jaccard(s, train_sets[j])
            if true >= threshold:
                pairs.append(TextPair(i, int(j), float(h.jaccard(train_hashes[j])), true))
    return sorted(pairs, key=lambda p: (p.eval_i, -p.jaccard, p.train_j))


def _minhashes(sets: list[set[str]]) -> list[MinHash]:
    return MinHash.bulk([[w.encode("utf-8") for w in s] for s in sets], num_perm=NUM_PERM)
