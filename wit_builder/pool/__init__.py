"""The candidate pool: read any img2dataset-style input (read.py), clean its text (normalize.py), identify its language (langid.py)."""
