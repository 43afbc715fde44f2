"""Offline evaluation tasks built from data `make data` installs (scikit-learn digits, Open Clip Art, Tux Paint
stamps, Noto emoji, installed fonts), each a deterministic 70/30 train/test split with its own prompt templates."""

from eval.tasks.build import KINDS, SHIFT_TASKS, TASKS, available_tasks, build_tasks
from eval.tasks.retrieval import retrieval_from_shards

__all__ = ["KINDS", "SHIFT_TASKS", "TASKS", "available_tasks", "build_tasks", "retrieval_from_shards"]
