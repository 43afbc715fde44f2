"""Train a byte-level BPE of CLIP's form (lower-cased, the same cleaning, pattern, byte alphabet and end-of-word
suffix) on a corpus's own captions, as an alternative to OpenAI's vocabulary.

    wit tokenizer train --data OUT --out merges.txt [--vocab-size 49408] [--min-frequency 2]
    wit train --data OUT --model tiny-vit --out RUN --tokenizer merges.txt

--data is a `wit build --out` folder (the captions of its downloaded samples, else of its selected pairs), a folder of
.tar shards, a brace pattern or one .tar (their .txt members). The merges file lists the learned merges in order.
"""

from __future__ import annotations

import argparse

HELP = "train a CLIP-form BPE tokenizer on a corpus's captions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    train = sub.add_parser("train", help="learn the merges from the captions of --data")
    train.add_argument(
        "--data", required=True, help="a build folder, a folder of .tar shards, a brace pattern or a .tar"
    )
    train.add_argument("--out", required=True, help="the merges file to write")
    train.add_argument("--vocab-size", type=int, default=49408, help="tokens in all, CLIP's 49,408 by default")
    train.add_argument("--min-frequency", type=int, default=2, help="a pair must occur this often to merge (default 2)")


def captions(data: str) -> list[str]:
    """The captions of --data: a build folder's downloaded samples (else its selected pairs), or the .txt members
    of WebDataset shards."""
    import tarfile

    import pyarrow.compute as pc

    from trainer.data import resolve_shards
    from wit_builder import storage
    from wit_builder.layout import BuildFolder

    folder = BuildFolder(data)
    if folder.finished_stage() is not None:
        samples = folder.read_samples()
        if samples.num_rows:
            kept = samples.filter(pc.equal(samples["status"], "success"))
            return [c for c in kept["caption"].to_pylist() if c]
        return [t for t in folder.read_curated()["text"].to_pylist() if t]
    texts = []
    for url in resolve_shards(data).urls:
        fs, path = storage.filesystem(url)
        with fs.open_input_stream(path) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".txt"):
                    text = tar.extractfile(member).read().decode("utf-8", errors="replace").strip()
                    if text:
                        texts.append(text)
    return texts


def run(args: argparse.Namespace) -> int:
    from trainer.tokenizer import TokenizerError, train_bpe
    from wit_builder.errors import WitError

    texts = captions(args.data)
    if not texts:
        raise WitError(f"{args.data} holds no captions to learn from")
    try:
        tokenizer = train_bpe(texts, args.vocab_size, min_frequency=args.min_frequency)
    except TokenizerError as err:
        raise WitError(f"{err}: give a larger --vocab-size") from err
    tokenizer.save(args.out)
    example = texts[0][:60]
    print(
        f"learned {tokenizer.vocab_size:,} tokens (asked {args.vocab_size:,}) from {len(texts):,} captions -> {args.out}\n"
        f"e.g. {example!r} -> {len(tokenizer.encode(example))} tokens"
    )
    return 0
