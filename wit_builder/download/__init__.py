"""Download stage: curated pairs -> WebDataset shards with img2dataset, under an address policy and a size guard.

policy.py (where a fetch may connect), guard.py (image size from the header before decoding), img2dataset_job.py
(one img2dataset run with both hooks), status.py (its per-row Parquet -> accounting), shards.py (the on-disk contract).
"""
