"""`wit tokenizer train`: a CLIP-form BPE learned from the captions of shards; the merges file loads back and turns
the corpus's frequent words into single tokens; no captions or a too-small vocabulary is one line."""

from __future__ import annotations

import io
import tarfile

from pipelines import cli
from trainer.tokenizer import load_tokenizer

WORDS = ["giraffe", "penguin", "lighthouse", "umbrella"]


def write_shard(path, captions):
    with tarfile.open(path, "w") as tar:
        for i, text in enumerate(captions):
            data = text.encode()
            info = tarfile.TarInfo(f"{i:09d}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_learns_the_corpus_words(tmp_path, capsys):
    captions = [f"a photo of a {WORDS[i % 4]} near the {WORDS[(i + 1) % 4]}" for i in range(200)] + [""]
    write_shard(tmp_path / "00000.tar", captions)
    out = tmp_path / "merges.txt"
    argv = ["tokenizer", "train", "--data", str(tmp_path / "00000.tar"), "--out", str(out), "--vocab-size", "700"]
    assert cli.main(argv) == 0
    assert "from 200 captions" in capsys.readouterr().out  # the empty caption is not one
    tokenizer = load_tokenizer(out)
    assert 514 < tokenizer.vocab_size <= 700
    for word in WORDS:  # seen 100 times each: merged into one token
        assert len(tokenizer.encode(word)) == 1, word
    assert tokenizer.tokenize(["A photo of a Giraffe"])[0, 0] == tokenizer.vocab_size - 2  # [SOT] first


def test_bad_input_is_one_line(tmp_path, capsys):
    write_shard(tmp_path / "00000.tar", ["", "  "])
    assert cli.main(["tokenizer", "train", "--data", str(tmp_path / "00000.tar"), "--out", str(tmp_path / "m")]) == 2
    assert "holds no captions" in capsys.readouterr().err
    write_shard(tmp_path / "00001.tar", ["some words here"])
    argv = [
        "tokenizer",
        "train",
        "--data",
        str(tmp_path / "00001.tar"),
        "--out",
        str(tmp_path / "m"),
        "--vocab-size",
        "9",
    ]
    assert cli.main(argv) == 2
    assert "give a larger --vocab-size" in capsys.readouterr().err
