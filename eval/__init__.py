"""eval: zero-shot, retrieval, linear probe, near-duplicate detection and the overlap report (arrives with its issue)."""
