"""eval.overlap: the paper's data-overlap (contamination) analysis, section 5 and Appendix C.

index.py   faiss index of training-image embeddings: exact inner product up to 200k vectors, IVF-PQ above
text.py    caption/prompt overlap by MinHash LSH over word 3-shingles, true Jaccard recomputed for each pair
stats.py   per dataset: All / Clean / Overlap accuracy, one-sided binomial test, 99.5% Clopper-Pearson, effect on All
report.py  overlap.parquet, summary.json and a self-contained index.html (Figure 17-style plot, table, thumbnails)
"""
