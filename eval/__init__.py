"""eval: zero-shot, retrieval, linear probe, near-duplicate detection and the overlap report.

So far: retrieval.py (Recall@K both ways, a training run's model, features of shards), which `wit demo` uses for its
held-out check; the rest arrives with its issue.
"""
