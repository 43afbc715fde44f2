"""Matching throughput: the token automaton vs MetaCLIP's reference loop vs pyahocorasick, same captions, same queries.

    .venv/bin/python benchmarks/bench_match.py [--queries 500000] [--captions 200000] [--reference-sample 200]

Queries: wordfreq's English list (top words as they are, capitalised, and adjacent-word bigrams and trigrams drawn
from it) up to --queries unique entries, the shape of the paper's 500k list. Captions: 4-25 words drawn from wordfreq's
frequency-ranked list (Zipf-like), with capitals, commas, full stops, quotes, parentheses, double spaces and newlines,
seeded. All three matchers must give identical results on the reference sample (and the fast two on every caption).
Throughput is captions per CPU-second (process time of this single-threaded process); both fast matchers return an
Arrow list<int32> column per batch of --batch captions, which is what the pipeline consumes. Build: CPU seconds and the
peak Python heap while building (pyahocorasick's trie lives in C, so tracemalloc cannot see it: its RSS growth is shown).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import tracemalloc


def synthetic_queries(n: int, seed: int = 0) -> list[str]:
    """n unique query strings shaped like MetaCLIP's list: unigrams, capitalised names, bigrams, a few trigrams."""
    import wordfreq

    rng = random.Random(seed)
    words = wordfreq.top_n_list("en", 250_000)
    out: dict[str, None] = {}
    for w in words[: int(n * 0.5)]:
        out.setdefault(w)
    for w in words[: int(n * 0.1)]:
        out.setdefault(w.capitalize())
    top = words[:20_000]
    while len(out) < n:
        k = 2 if rng.random() < 0.85 else 3
        out.setdefault(" ".join(rng.choice(top) for _ in range(k)))
    return list(out)[:n]


def synthetic_captions(n: int, seed: int = 1) -> list[str]:
    """n caption-like strings over a Zipf-like vocabulary, with the punctuation and whitespace that matter for matching."""
    import wordfreq

    rng = random.Random(seed)
    words = wordfreq.top_n_list("en", 50_000)
    cum, total = [], 0.0
    for i in range(len(words)):
        total += 1.0 / (i + 10)
        cum.append(total)
    caps = []
    for _ in range(n):
        toks = rng.choices(words, cum_weights=cum, k=rng.randint(4, 25))
        if rng.random() < 0.5:
            toks[0] = toks[0].capitalize()
        text = " ".join(toks)
        r = rng.random()
        if r < 0.3:
            text = text.replace(" ", ", ", 1)
        elif r < 0.4:
            text = f'"{text}"'
        elif r < 0.45:
            text = text.replace(" ", "  ", 1)
        elif r < 0.5:
            text = text.replace(" ", "\n", 1)
        elif r < 0.55:
            text = f"({text})"
        caps.append(text + ("." if rng.random() < 0.4 else ""))
    return caps


def pyahocorasick_matcher(entries: list[str]):
    """The same semantics with pyahocorasick: a character automaton over " entry " run on the spaced text."""
    import ahocorasick

    from wit_builder.match.reference import spaced

    auto = ahocorasick.Automaton()
    for qid, entry in enumerate(entries):
        auto.add_word(f" {entry} ", qid)
    auto.make_automaton()

    def match(texts: list[str]):
        """Arrow list<int32> per text, as the pipeline needs (the same output type as the token automaton)."""
        import pyarrow as pa

        out = [sorted({qid for _, qid in auto.iter(spaced(text))}) for text in texts]
        return pa.array(out, pa.list_(pa.int32()))

    return auto, match


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def _build(fn):
    """(object, build CPU seconds, peak Python heap bytes); timed without tracemalloc, which slows allocation."""
    obj, _, cpu = _timed(fn)
    del obj
    tracemalloc.start()
    obj = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return obj, cpu, peak


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=500_000)
    parser.add_argument("--captions", type=int, default=200_000)
    parser.add_argument("--reference-sample", type=int, default=200)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args(argv)

    import pyarrow as pa

    from wit_builder.match.automaton import TokenAutomaton
    from wit_builder.match.reference import match_reference

    entries = synthetic_queries(args.queries)
    captions = synthetic_captions(args.captions)
    print(
        f"{len(entries):,} queries, {len(captions):,} captions "
        f"(mean {sum(map(len, captions)) / len(captions):.0f} chars)",
        file=sys.stderr,
    )

    token, t_build, t_mem = _build(lambda: TokenAutomaton(entries))
    rss0 = _rss_mb()
    (aho, aho_match), a_build, _ = _build(lambda: pyahocorasick_matcher(entries))
    a_rss = _rss_mb() - rss0

    arrow = pa.array(captions, pa.string())
    batches = [arrow.slice(i, args.batch) for i in range(0, len(arrow), args.batch)]
    token_lists, _, token_cpu = _timed(lambda: [token.match(b) for b in batches])
    aho_lists, _, aho_cpu = _timed(
        lambda: [aho_match(captions[i : i + args.batch]) for i in range(0, len(captions), args.batch)]
    )
    token_out = [x for b in token_lists for x in b.to_pylist()]
    aho_out = [x for b in aho_lists for x in b.to_pylist()]
    sample = captions[: args.reference_sample]
    ref_out, _, ref_cpu = _timed(lambda: [match_reference(t, entries) for t in sample])

    same_sample = ref_out == token_out[: len(sample)] == aho_out[: len(sample)]
    same_all = token_out == aho_out
    matched = sum(1 for x in token_out if x)
    rate = {
        "reference loop": len(sample) / ref_cpu,
        "pyahocorasick": len(captions) / aho_cpu,
        "token automaton (wit)": len(captions) / token_cpu,
    }
    print(
        f"\nmatch results: reference == pyahocorasick == token automaton on {len(sample)} captions: {same_sample}; "
        f"token automaton == pyahocorasick on all {len(captions):,}: {same_all}; "
        f"{matched:,} captions matched at least one query"
    )
    print("\n| matcher | captions / CPU-s | vs reference | build s | build peak MB |")
    print("|---|---:|---:|---:|---:|")
    print(f"| reference loop (MetaCLIP semantics) | {rate['reference loop']:,.1f} | 1x | 0 | 0 |")
    print(
        f"| pyahocorasick, same semantics | {rate['pyahocorasick']:,.0f} | "
        f"{rate['pyahocorasick'] / rate['reference loop']:,.0f}x | {a_build:.2f} | ~{a_rss:,.0f} (RSS growth, C heap) |"
    )
    print(
        f"| token automaton (wit_builder.match) | {rate['token automaton (wit)']:,.0f} | "
        f"{rate['token automaton (wit)'] / rate['reference loop']:,.0f}x | {t_build:.2f} | {t_mem / 1e6:,.0f} |"
    )
    print(
        f"\ntoken automaton / pyahocorasick = {rate['token automaton (wit)'] / rate['pyahocorasick']:.2f}x; "
        f"max RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"
    )
    return 0 if same_sample and same_all else 1


if __name__ == "__main__":
    sys.exit(main())
