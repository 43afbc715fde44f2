"""CLIP's tokenizer: lower-cased byte-level BPE with an end-of-word suffix (Radford et al. 2021, section 2.4; Sennrich
et al. 2016), run by the `tokenizers` library so ids equal OpenAI's and OpenCLIP's: [SOT] tokens [EOT], zero-padded
or truncated to the 77-token context. `train_bpe` learns a BPE of the same form from a corpus's captions.

Text is cleaned exactly as OpenAI's tokenizer does (ftfy, HTML entities unescaped twice, whitespace collapsed,
lower-cased) before the Rust tokenizer splits it with OpenAI's pattern and applies the merges.
"""

from __future__ import annotations

import gzip
import html
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import ftfy
import numpy as np
import torch
from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, trainers

OPENAI_VOCAB = Path(__file__).parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
OPENAI_VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77
SOT, EOT = "<start_of_text>", "<end_of_text>"
EOW = "</w>"  # end-of-word suffix: "cat" as the last piece of a word is "cat</w>"
# OpenAI's pre-tokenisation: contractions, letter runs, single digits, runs of other non-space characters.
PATTERN = r"""(?i)'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
BASE_SYMBOLS = 512  # every byte, alone and with the end-of-word suffix
SPECIALS = 2


class TokenizerError(ValueError):
    """A vocabulary file that is missing or not a BPE merges file, or an impossible vocabulary size."""


@lru_cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def clean(text: str) -> str:
    """OpenAI's cleaning: fix mojibake (ftfy), unescape HTML twice, collapse whitespace, lower-case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


def _pre_tokenizer():
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


class ClipTokenizer:
    """Byte-level BPE over a list of merges; vocabulary = 256 bytes, the same with `</w>`, one token per merge, SOT,
    EOT (OpenAI's order, so OpenAI's merges give OpenAI's ids)."""

    def __init__(self, merges: Sequence[tuple[str, str]], context_length: int = CONTEXT_LENGTH):
        self.merges = [tuple(m) for m in merges]
        self.context_length = context_length
        byte_symbols = list(bytes_to_unicode().values())
        self.vocab = byte_symbols + [s + EOW for s in byte_symbols] + [a + b for a, b in self.merges] + [SOT, EOT]
        self.sot_id, self.eot_id = len(self.vocab) - 2, len(self.vocab) - 1
        self._tokenizer: Tokenizer | None = None

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def tokenizer(self) -> Tokenizer:
        """The Rust tokenizer, built on first use (and rebuilt after unpickling, e.g. in a Ray worker)."""
        if self._tokenizer is None:
            index = {token: i for i, token in enumerate(self.vocab)}  # a repeated string keeps its last id, as OpenAI's
            model = models.BPE(vocab=index, merges=self.merges, end_of_word_suffix=EOW, continuing_subword_prefix="")
            tok = Tokenizer(model)
            tok.pre_tokenizer = _pre_tokenizer()
            tok.add_special_tokens([AddedToken(SOT, special=True), AddedToken(EOT, special=True)])
            self._tokenizer = tok
        return self._tokenizer

    def __getstate__(self):
        return {**self.__dict__, "_tokenizer": None}

    @classmethod
    def openai(cls, context_length: int = CONTEXT_LENGTH) -> ClipTokenizer:
        """OpenAI's CLIP vocabulary (49,408 tokens), shipped with this package."""
        return cls.from_file(OPENAI_VOCAB, vocab_size=OPENAI_VOCAB_SIZE, context_length=context_length)

    @classmethod
    def from_file(
        cls, path: str | Path, vocab_size: int | None = None, context_length: int = CONTEXT_LENGTH
    ) -> ClipTokenizer:
        """A merges file in OpenAI's format (gzip or plain text: a header line, then `a b` per merge); `vocab_size`
        keeps the first vocab_size - 514 merges (OpenAI's file holds more than its model uses)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
            text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise TokenizerError(f"cannot read the BPE vocabulary {path}: {e}") from None
        merges = [tuple(line.split(" ")) for line in text.split("\n")[1:] if line]
        if not merges or any(len(m) != 2 for m in merges):
            raise TokenizerError(f"{path} is not a BPE merges file (a header line, then one 'a b' pair per line)")
        if vocab_size is not None:
            merges = merges[: _merge_count(vocab_size)]
        return cls(merges, context_length)

    def save(self, path: str | Path) -> None:
        """Write the merges in OpenAI's format (gzip when the name ends in .gz); `from_file` reads it back."""
        text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges)
        data = gzip.compress(text.encode("utf-8"), mtime=0) if str(path).endswith(".gz") else text.encode("utf-8")
        Path(path).write_bytes(data)

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text, without SOT/EOT and without truncation."""
        return self.tokenizer.encode(clean(text), add_special_tokens=False).ids

    def tokenize(self, texts: str | Sequence[str], context_length: int | None = None) -> np.ndarray:
        """int64 [n, context]: [SOT] ids [EOT] then zeros; a text too long keeps its first context - 2 ids."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        ctx = context_length or self.context_length
        out = np.zeros((len(texts), ctx), dtype=np.int64)
        encodings = self.tokenizer.encode_batch([clean(t) for t in texts], add_special_tokens=False)
        for i, enc in enumerate(encodings):
            ids = enc.ids[: ctx - 2]
            out[i, 0] = self.sot_id
            out[i, 1 : len(ids) + 1] = ids
            out[i, len(ids) + 1] = self.eot_id
        return out

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        """As `open_clip.tokenize`: a LongTensor [n, context]."""
        return torch.from_numpy(self.tokenize(texts, context_length))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a row of ids: SOT dropped, stops at EOT, words separated by spaces (lower-cased, cleaned)."""
        pieces = []
        for i in ids:
            i = int(i)
            if i == self.eot_id:
                break
            if i != self.sot_id:
                pieces.append(self.vocab[i])
        decoder = {c: b for b, c in bytes_to_unicode().items()}
        data = bytes(decoder[c] for c in "".join(pieces))  # "</w>" is printable ASCII: it maps to its own bytes
        return data.decode("utf-8", errors="replace").replace(EOW, " ").strip()


def _merge_count(vocab_size: int) -> int:
    merges = vocab_size - BASE_SYMBOLS - SPECIALS
    if merges < 0:
        raise TokenizerError(
            f"vocabulary size {vocab_size} is below the {BASE_SYMBOLS + SPECIALS} byte and special "
            f"tokens every CLIP BPE holds"
        )
    return merges


def load_tokenizer(path: str | Path | None = None, context_length: int = CONTEXT_LENGTH) -> ClipTokenizer:
    """OpenAI's tokenizer when `path` is None, else a merges file written by `ClipTokenizer.save`/`train_bpe`."""
    if path is None:
        return ClipTokenizer.openai(context_length)
    return ClipTokenizer.from_file(path, context_length=context_length)


def train_bpe(
    captions: Iterable[str], vocab_size: int, min_frequency: int = 2, context_length: int = CONTEXT_LENGTH
) -> ClipTokenizer:
    """Learn a CLIP-form BPE (same cleaning, pattern, byte alphabet and `</w>` suffix) from captions; its vocabulary
    holds `vocab_size` tokens, or fewer when the corpus runs out of pairs seen `min_frequency` times."""
    wanted = _merge_count(vocab_size)
    tok = Tokenizer(models.BPE(end_of_word_suffix=EOW, continuing_subword_prefix=""))
    tok.pre_tokenizer = _pre_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix=EOW,
        continuing_subword_prefix="",
    )
    tok.train_from_iterator((clean(c) for c in captions), trainer=trainer)
    learned = json.loads(tok.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned]
    return ClipTokenizer(merges[:wanted], context_length)
