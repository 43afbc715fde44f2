"""Our tokenizer against OpenCLIP's on real captions (the demo web's pool, else the Debian collections it is built
from), hand-made edge cases, truncation, pickling, and `train_bpe`."""

from __future__ import annotations

import html
import pickle
import random

import numpy as np
import open_clip
import pytest
import torch

from trainer.tokenizer import (
    OPENAI_VOCAB,
    OPENAI_VOCAB_SIZE,
    ClipTokenizer,
    TokenizerError,
    load_tokenizer,
    train_bpe,
)
from wit_builder.paths import cache_dir

EDGE_CASES = [
    "",
    "   ",
    "\t\n",
    "a",
    "A photo of a CAT.",
    "Hello, World! It's 2021",
    "don't won't we'll I'M you'VE",
    "café naïve Ærø straße İstanbul ǅemal",
    "日本語のテキストと漢字",
    "Привет, мир",
    "مرحبا بالعالم",
    "שלום עולם",
    "🙂😀👍🏽 family: 👨‍👩‍👧‍👦 flag 🇫🇷",
    "Tom &amp; Jerry &lt;3 &quot;quoted&quot; &#x263A; &amp;amp;",
    "mojibake: CafÃ© â€œquotedâ€\x9d",
    "tabs\tand\nnewlines\r\n  and\u00a0nbsp\u2003em space",
    "zero\u200bwidth\u200djoiner",
    "12345 3.14159 1,000,000 ½ ² ٣",
    "e-mail@example.com http://x.y/z?q=1#f",
    "<start_of_text> inside <END_OF_TEXT> text",
    "'s 's's ''s",
    "ﬁ ligature Ⅻ ℌ ㎏",
    "\x00\x01 control \x7f",
    "word " * 200,
    "x" * 1000,
    "😀" * 100,
    "long-" * 60 + "end",
]


def _real_captions(n: int = 3000) -> list[str]:
    """Up to n captions: the demo web's pool when built, else Open Clip Art and Tux Paint (many languages) texts."""
    pool = cache_dir() / "demo" / "web" / "pool.parquet"
    if pool.exists():
        import pyarrow.parquet as pq

        texts = [t for t in pq.read_table(pool, columns=["text"]).column("text").to_pylist() if t is not None]
        return random.Random(0).sample(texts, min(n, len(texts)))
    from wit_builder.web import sources

    try:
        texts = [t for rec in sources.tuxpaint() for _, t in rec.texts]
        texts += [t for rec in sources.openclipart(limit=600) for _, t in rec.texts]
        texts += [t for rec in sources.emoji(limit=300) for _, t in rec.texts] + [
            rec.emoji for rec in sources.emoji(limit=300)
        ]
    except Exception as e:  # noqa: BLE001 - the Debian data is optional here: say what is missing
        pytest.skip(f"no demo pool and no Debian data under {cache_dir()} ({e}); run `make data`")
    rng = random.Random(0)
    texts = rng.sample(texts, min(n, len(texts)))
    # the web's noise: HTML entities, mojibake, page-long texts
    texts += [html.escape(t).replace(" ", "&nbsp;", 1) for t in texts[:200]]
    texts += [t.encode("utf-8").decode("latin-1") for t in texts[200:400]]
    texts += [" | ".join(texts[i : i + 80]) for i in range(0, 2400, 80)]
    return texts


@pytest.fixture(scope="module")
def tokenizer() -> ClipTokenizer:
    return ClipTokenizer.openai()


def test_ids_equal_open_clip_on_edge_cases(tokenizer):
    ours = tokenizer(EDGE_CASES)
    theirs = open_clip.tokenize(EDGE_CASES)
    for text, a, b in zip(EDGE_CASES, ours, theirs):
        assert torch.equal(a, b), text
    assert torch.equal(tokenizer(EDGE_CASES), open_clip.get_tokenizer("ViT-B-32")(EDGE_CASES))


def test_ids_equal_open_clip_on_thousands_of_real_captions(tokenizer):
    texts = _real_captions()
    assert len(texts) >= 2000
    assert any(not t.isascii() for t in texts)
    ours, theirs = tokenizer(texts), open_clip.tokenize(texts)
    mismatched = [t for t, a, b in zip(texts, ours, theirs) if not torch.equal(a, b)]
    assert not mismatched, f"{len(mismatched)} of {len(texts)} differ, e.g. {mismatched[:3]!r}"
    assert (ours[:, -1] != 0).any()  # some were long enough to be truncated


def test_layout_sot_eot_padding_and_truncation(tokenizer):
    assert (tokenizer.vocab_size, tokenizer.sot_id, tokenizer.eot_id) == (OPENAI_VOCAB_SIZE, 49406, 49407)
    row = tokenizer("a photo of a cat")[0]
    assert row.shape == (77,) and row.dtype == torch.long
    assert row[:7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407] and not row[7:].any()
    long = tokenizer("word " * 200)[0]
    assert long[0] == 49406 and long[-1] == 49407 and (long[1:-1] == tokenizer.encode("word")[0]).all()
    assert tokenizer("a b c", context_length=4).tolist() == [[49406, 320, 321, 49407]]
    assert tokenizer.tokenize(["x", "y"]).dtype == np.int64
    assert tokenizer.decode(tokenizer("A Photo of a CAT!")[0]) == "a photo of a cat !"


def test_pickles_for_ray_workers(tokenizer):
    again = pickle.loads(pickle.dumps(tokenizer))
    assert torch.equal(again(EDGE_CASES), tokenizer(EDGE_CASES))


def test_train_bpe_learns_a_clip_form_vocabulary_that_round_trips(tmp_path):
    captions = [c for c in _real_captions(1500) if c.strip()] + EDGE_CASES
    tok = train_bpe(captions, vocab_size=1200)
    assert tok.vocab_size == 1200 and tok.sot_id == 1198 and tok.eot_id == 1199
    ids = tok(captions)
    assert ids.max() < 1200 and (ids[:, 0] == 1198).all()
    assert tok.decode(tok("a cat on a mat")[0]) == "a cat on a mat"
    assert (ids > 0).sum(1).float().mean() < (tok_bytes := ClipTokenizer([]))(captions).gt(0).sum(1).float().mean()
    assert tok_bytes.vocab_size == 514
    for name in ("bpe.txt.gz", "bpe.txt"):
        tok.save(tmp_path / name)
        again = load_tokenizer(tmp_path / name)
        assert again.merges == tok.merges and torch.equal(again(captions), ids)


def test_train_bpe_on_the_openai_form_reproduces_openai_ids_for_its_own_merges(tokenizer):
    """OpenAI's merges saved and reloaded through our file format give OpenAI's ids."""
    again = ClipTokenizer(tokenizer.merges)
    assert torch.equal(again(EDGE_CASES), open_clip.tokenize(EDGE_CASES))


def test_bad_vocabulary_files_and_sizes_are_one_clear_error(tmp_path):
    with pytest.raises(TokenizerError, match="cannot read the BPE vocabulary"):
        load_tokenizer(tmp_path / "missing.txt.gz")
    (tmp_path / "bad.txt").write_text("#version: 0.2\nabc\n")
    with pytest.raises(TokenizerError, match="not a BPE merges file"):
        load_tokenizer(tmp_path / "bad.txt")
    (tmp_path / "trunc.gz").write_bytes(OPENAI_VOCAB.read_bytes()[:999])
    with pytest.raises(TokenizerError, match="cannot read"):
        load_tokenizer(tmp_path / "trunc.gz")
    with pytest.raises(TokenizerError, match="below the 514"):
        train_bpe(["a b c"], vocab_size=100)
