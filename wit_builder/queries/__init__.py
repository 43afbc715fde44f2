"""The query list of the CLIP paper (Radford et al. 2021, §2.2: 500,000 queries): Wikipedia unigrams and high-PMI
bigrams, popular article titles and WordNet lemmas.

Modules, one role each:
- config.py          QueryConfig: thresholds from the paper / MetaCLIP, and the rule that scales them to a small corpus
- normalize.py       the one normal form every query is stored in (the matcher relies on it)
- wikipedia.py       stream pages out of a pages-articles XML export (plain .xml.bz2 or multistream + index)
- prose.py           wikitext -> prose, outgoing links, disambiguation flag (mwparserfromhell)
- tokenize.py        the documented tokenisation: segments and tokens used for unigram and bigram counts
- counts.py          partial counts per block of pages and their DuckDB reduction (counts, bigram PMI, in-links)
- titles.py          article-title popularity: a Wikimedia pageviews file, else in-links counted in the dump
- wordnet.py         all synsets' lemmas from the WordNet 3.0 database files
- wordfreq_source.py the offline stand-in for Wikipedia unigram counts (wordfreq's large_en list)
- build.py           merge, deduplicate, cap, provenance and the Parquet file with its metadata
"""
