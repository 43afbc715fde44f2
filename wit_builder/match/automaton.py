"""The fast matcher: an automaton over *tokens* that gives exactly MetaCLIP's substring matches (reference.py).

The batch is spaced by the rule of reference.py (WRAPPED, SPACED: , . ; : ? ! and the backtick wrapped in spaces,
the double quote left alone, tab/newline/CR turned into spaces). Why tokens: in the spaced text every match starts
and ends at a space, so " entry " occurs in it exactly when the entry's pieces (entry.split(" ")) occur as
consecutive pieces of the spaced text split on single spaces (runs of spaces give empty pieces, on both sides
alike). Matching therefore needs no character automaton: the batch is spaced and split in Arrow (C++), its distinct
pieces are mapped to token ids once per batch, and a trie of token sequences is walked for all start positions of
the batch at once with numpy (one vectorised step per trie level; positions whose prefix is in no entry drop out).
Every occurrence, overlapping ones included, is found; each entry is reported once per text, ids ascending, as the
reference does.

Build it once per worker (it holds a dict of every entry token and a few numpy arrays; it pickles).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.errors import WitError
from wit_builder.match.reference import SPACED, WRAPPED


class TokenAutomaton:
    """All entries of a query list as a trie of token ids; `match(texts)` returns a list<int32> of entry ids per text."""

    def __init__(self, entries: Sequence[str]):
        self.entries = list(entries)
        vocab: dict[str, int] = {}
        edges: dict[tuple[int, int], int] = {}
        terminal: dict[int, int] = {}
        for qid, entry in enumerate(self.entries):
            if not isinstance(entry, str):
                raise WitError(f"query #{qid} is {entry!r}, not a string: fix the query list")
            node = 0
            for piece in entry.split(" "):
                tok = vocab.setdefault(piece, len(vocab))
                child = edges.get((node, tok))
                if child is None:
                    child = edges[(node, tok)] = len(edges) + 1
                node = child
            if node in terminal:
                raise WitError(
                    f"query {entry!r} appears twice in the query list (#{terminal[node]} and #{qid}): "
                    "deduplicate it (load_queries does)"
                )
            terminal[node] = qid
        self.vocab = vocab
        self.n_tokens = max(len(vocab), 1)
        n_nodes = len(edges) + 1
        self.terminal = np.full(n_nodes, -1, dtype=np.int64)
        if terminal:
            self.terminal[np.fromiter(terminal.keys(), np.int64)] = np.fromiter(terminal.values(), np.int64)
        self.root_child = np.full(self.n_tokens, -1, dtype=np.int64)
        keys, children = [], []
        for (parent, tok), child in edges.items():
            if parent == 0:
                self.root_child[tok] = child
            else:
                keys.append(parent * self.n_tokens + tok)
                children.append(child)
        order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")
        self.edge_keys = np.asarray(keys, dtype=np.int64)[order]
        self.edge_children = np.asarray(children, dtype=np.int64)[order]

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.ListArray:
        """Entry ids (ascending, each once) per text; a null text matches nothing (an empty list)."""
        texts = _as_string_array(texts)
        n = len(texts)
        if n == 0 or not self.entries:
            return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.int32()))
        spaced = texts.fill_null("")
        for mark in WRAPPED:
            spaced = pc.replace_substring(spaced, mark, f" {mark} ")
        for char in SPACED:
            spaced = pc.replace_substring(spaced, char, " ")
        pieces = pc.split_pattern(spaced, " ")
        offsets = np.asarray(pieces.offsets, dtype=np.int64)
        flat = pieces.values
        ids = self._token_ids(flat)
        lengths = np.diff(offsets)
        owner = np.repeat(np.arange(n, dtype=np.int64), lengths)
        end = offsets[1:][owner]  # one past the last piece of the position's own text
        hit_text, hit_qid = self._walk(ids, owner, end)
        if texts.null_count:  # a null text was spaced as "": drop its hits (it would match only an empty query)
            valid = np.asarray(texts.is_valid().to_numpy(zero_copy_only=False), bool)[hit_text]
            hit_text, hit_qid = hit_text[valid], hit_qid[valid]
        return _to_lists(hit_text, hit_qid, n, len(self.entries))

    def _token_ids(self, flat: pa.Array) -> np.ndarray:
        """Vocabulary id of every piece (-1 when the piece is in no entry): one dict lookup per distinct piece."""
        encoded = pc.dictionary_encode(flat)
        get = self.vocab.get
        lookup = np.fromiter(
            (get(p, -1) for p in encoded.dictionary.to_pylist()), dtype=np.int64, count=len(encoded.dictionary)
        )
        indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        return lookup[indices]

    def _walk(self, ids: np.ndarray, owner: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Walk the trie from every position at once; collect (text, entry) for every terminal node reached."""
        found_text, found_qid = [], []
        start = np.nonzero(ids >= 0)[0]
        node = self.root_child[ids[start]]
        keep = node >= 0
        pos, node = start[keep], node[keep]
        step = 1
        while len(pos):
            qid = self.terminal[node]
            hit = qid >= 0
            if hit.any():
                found_text.append(owner[pos[hit]])
                found_qid.append(qid[hit])
            nxt = pos + step
            inside = nxt < end[pos]
            pos, node, nxt = pos[inside], node[inside], nxt[inside]
            tok = ids[nxt]
            known = tok >= 0
            pos, node, tok = pos[known], node[known], tok[known]
            if not len(pos) or not len(self.edge_keys):
                break
            key = node * self.n_tokens + tok
            slot = np.searchsorted(self.edge_keys, key)
            slot_clipped = np.minimum(slot, len(self.edge_keys) - 1)
            exists = self.edge_keys[slot_clipped] == key
            pos, node = pos[exists], self.edge_children[slot_clipped[exists]]
            step += 1
        if not found_text:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(found_text), np.concatenate(found_qid)


def _as_string_array(texts) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not isinstance(texts, pa.Array):
        texts = pa.array(list(texts), pa.string())
    if pa.types.is_large_string(texts.type) or pa.types.is_string_view(texts.type):
        texts = texts.cast(pa.string())
    if not pa.types.is_string(texts.type):
        raise WitError(f"texts to match must be strings, got Arrow type {texts.type}")
    return texts


def _to_lists(text: np.ndarray, qid: np.ndarray, n: int, n_entries: int) -> pa.ListArray:
    """(text, entry) hits -> one sorted, de-duplicated list<int32> per text."""
    combined = np.sort(text * n_entries + qid)
    if len(combined):
        combined = combined[np.concatenate(([True], combined[1:] != combined[:-1]))]
    text, qid = combined // n_entries, combined % n_entries
    counts = np.bincount(text, minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(qid.astype(np.int32)))
