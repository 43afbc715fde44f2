"""Run one evaluation task on one dataset: the glue between the loaders (eval/datasets.py), the embedder, and the
task's arithmetic (zero-shot, retrieval, linear probe, few-shot, robustness). Each result is a record in
CLIP_benchmark's shape ({dataset, model, pretrained, task, metrics, language}) plus what was skipped and, with
`per_example`, one row per test image (what the overlap report joins on)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from eval.datasets import EvalSet, load_eval_set
from eval.embed import embed_images, embed_texts
from eval.model import EvalModel
from eval.tasks import SHIFT_TASKS
from eval.templates import IMAGENET, NAMED, named
from wit_builder.errors import WitError

TASKS = ("zeroshot", "retrieval", "linear-probe", "few-shot", "robustness")
# CLIP_benchmark's task names in the result records
BENCHMARK_TASK = {
    "zeroshot": "zeroshot_classification",
    "retrieval": "zeroshot_retrieval",
    "linear-probe": "linear_probe",
    "few-shot": "few_shot_linear_probe",
    "robustness": "distribution_shift",
}


@dataclass
class EvalOptions:
    """How to evaluate; the defaults are the paper's (its 80 templates when a dataset ships none, shots 1..16)."""

    templates: str | None = None  # a named set (imagenet, one, name) or a file; None: the dataset's own
    classnames: str | None = None  # a class-names file overriding the dataset's
    data_dir: str | None = None  # where `wit eval data` wrote the offline tasks
    batch_size: int = 64
    ray: bool | None = None  # None: Ray Data from eval.embed.RAY_MIN_IMAGES images on
    shots: tuple[int, ...] = (1, 2, 4, 8, 16)
    seeds: tuple[int, ...] = (0, 1, 2)
    per_example: bool = False
    standardize: bool = True  # probes see features standardised by the train split (eval.linear_probe.standardize)
    plot_dir: str | None = None  # where robustness writes its PNG
    progress: bool = False
    allow_hosts: tuple[str, ...] = ()


@dataclass
class Features:
    """Image features of one split, the rows of the set they belong to (`ok`), and the skipped counts."""

    x: np.ndarray
    labels: np.ndarray | None
    keys: list[str]
    skipped: Counter
    data: EvalSet


@dataclass
class TaskResult:
    record: dict  # CLIP_benchmark's shape
    skipped: dict[str, int] = field(default_factory=dict)
    predictions: pa.Table | None = None  # per test image (with per_example)
    extra: dict = field(default_factory=dict)  # e.g. the robustness rows, the plot path


class Evaluator:
    """One model; features of each (dataset, split) computed once and reused by every task that needs them."""

    def __init__(self, model: EvalModel, options: EvalOptions | None = None):
        self.model, self.options = model, options or EvalOptions()
        self._features: dict[tuple[str, str], Features] = {}
        self._sets: dict[tuple[str, str], EvalSet] = {}

    # --- data -------------------------------------------------------------------------------------------------
    def eval_set(self, dataset: str, split: str) -> EvalSet:
        key = (dataset, split)
        if key not in self._sets:
            o = self.options
            self._sets[key] = load_eval_set(
                dataset,
                split,
                data_dir=o.data_dir,
                classnames=o.classnames,
                templates=_templates_file(o.templates),
                allow_hosts=o.allow_hosts,
            )
        return self._sets[key]

    def features(self, dataset: str, split: str) -> Features:
        key = (dataset, split)
        if key not in self._features:
            data = self.eval_set(dataset, split)
            if not data.images:
                raise WitError(f"{dataset} has no images in its {split} split")
            emb = embed_images(
                self.model.model, data.images, self.options.batch_size, self.options.ray, self.options.progress
            )
            labels = data.labels[emb.ok] if data.labels is not None else None
            keys = [k for k, good in zip(data.keys, emb.ok) if good]
            skipped = Counter(data.skipped) + emb.skipped
            self._features[key] = Features(emb.features, labels, keys, skipped, data)
        return self._features[key]

    def templates_for(self, data: EvalSet) -> list[str]:
        """The prompts: a named set when asked, else the file's or the dataset's own, else the paper's 80."""
        t = self.options.templates
        if t is not None and t in NAMED:
            return list(named(t))
        return list(data.templates or IMAGENET)

    def class_weights(self, data: EvalSet, templates: list[str] | None = None) -> np.ndarray:
        from eval.zeroshot import classifier_weights

        if not data.classnames:
            raise WitError(f"{data.name} has no class names: give --classnames FILE")
        return classifier_weights(
            self.model.model, self.model.tokenizer, data.classnames, templates or self.templates_for(data)
        )

    # --- tasks ------------------------------------------------------------------------------------------------
    def run(self, task: str, dataset: str) -> TaskResult:
        if task not in TASKS:
            raise WitError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
        return getattr(self, task.replace("-", "_"))(dataset)

    def zeroshot(self, dataset: str, templates: list[str] | None = None) -> TaskResult:
        from eval.zeroshot import classify, classify_logits, generative_logits, objective_of

        feats = self.features(dataset, "test")
        _need_labels(feats, dataset)
        if objective_of(self.model.model) == "contrastive":
            result = classify(feats.x, feats.labels, self.class_weights(feats.data, templates))
        else:
            if not feats.data.classnames:
                raise WitError(f"{feats.data.name} has no class names: give --classnames FILE")
            logits = generative_logits(
                self.model.model,
                self.model.tokenizer,
                feats.x,
                feats.data.classnames,
                templates or self.templates_for(feats.data),
            )
            result = classify_logits(logits, feats.labels)
        predictions = (
            _predictions(feats, "zeroshot", result.predictions, result.top5) if self.options.per_example else None
        )
        return TaskResult(self._record(feats.data, "zeroshot", result.metrics), dict(feats.skipped), predictions)

    def retrieval(self, dataset: str) -> TaskResult:
        from eval.retrieval import retrieval_metrics
        from eval.zeroshot import objective_of

        objective = objective_of(self.model.model)
        if objective != "contrastive":
            raise WitError(
                f"{self.model.checkpoint} was trained with --objective {objective}: retrieval needs a contrastive "
                "(CLIP) model's text embeddings"
            )
        feats = self.features(dataset, "test")
        data = feats.data
        if data.captions is None:
            raise WitError(f"{dataset} is a classification set: retrieval needs captions per image")
        kept = [caps for caps, good in zip(data.captions, _ok_mask(data, feats)) if good]
        texts = [t for caps in kept for t in caps]
        text_image = np.array([i for i, caps in enumerate(kept) for _ in caps], dtype=np.int64)
        skipped = dict(feats.skipped)
        no_caption = sum(1 for caps in kept if not caps)
        if no_caption:
            skipped["image without caption"] = no_caption
        text_x = embed_texts(self.model.model, self.model.tokenizer, texts)
        metrics = retrieval_metrics(feats.x, text_x, text_image, ks=(1, 5, 10))
        return TaskResult(self._record(data, "retrieval", metrics), skipped)

    def linear_probe(self, dataset: str) -> TaskResult:
        from eval.linear_probe import linear_probe

        train, test = self.features(dataset, "train"), self.features(dataset, "test")
        _need_labels(test, dataset)
        train_x, test_x = self._probe_inputs(train.x, test.x)
        probe = linear_probe(train_x, train.labels, test_x, test.labels)
        metrics = {
            "lp_acc1": probe.top1,
            "lp_acc5": probe.top5 if probe.top5 is not None else float("nan"),
            "lp_mean_per_class_recall": probe.mean_per_class_recall,
            "C": probe.C,
            "val_acc1": probe.val_accuracy,
        }
        predictions = _predictions(test, "linear-probe", probe.predictions) if self.options.per_example else None
        skipped = dict(Counter({f"train: {k}": v for k, v in train.skipped.items()}) + test.skipped)
        return TaskResult(self._record(test.data, "linear-probe", metrics), skipped, predictions)

    def few_shot(self, dataset: str) -> TaskResult:
        from eval.linear_probe import few_shot

        train, test = self.features(dataset, "train"), self.features(dataset, "test")
        _need_labels(test, dataset)
        zs = self.zeroshot(dataset).record["metrics"]["acc1"]
        train_x, test_x = self._probe_inputs(train.x, test.x)
        rows = few_shot(train_x, train.labels, test_x, test.labels, shots=self.options.shots, seeds=self.options.seeds)
        metrics = {"zeroshot_acc1": zs}
        for r in rows:
            metrics[f"{r.k}shot_acc1"] = r.mean_top1
            metrics[f"{r.k}shot_acc1_std"] = r.std_top1
        return TaskResult(self._record(test.data, "few-shot", metrics), dict(test.skipped))

    def robustness(self, dataset: str) -> TaskResult:
        """`dataset` names the sources, the first being the one the probes train on: `shift` (the bundled
        clip-art/stamps/emoji family) or a comma-separated list of datasets that share their class names."""
        from eval.robustness import plot_robustness, robustness

        names = list(SHIFT_TASKS) if dataset == "shift" else [d for d in dataset.split(",") if d]
        if len(names) < 2:
            raise WitError("robustness needs at least two sources: --dataset shift, or A,B[,C] sharing classes")
        sources, zero_shot = {}, {}
        classes = None
        reference = self.features(names[0], "train").x  # every source is scaled as the probes' training source
        for name in names:
            train, test = self.features(name, "train"), self.features(name, "test")
            if classes is None:
                classes = test.data.classnames
            elif test.data.classnames != classes:
                raise WitError(f"{name} has other class names than {names[0]}: shifts need the same classes")
            _, train_x, test_x = self._probe_inputs(reference, train.x, test.x)
            sources[name] = (train_x, train.labels, test_x, test.labels)
            zero_shot[name] = self.zeroshot(name).record["metrics"]["acc1"]
        result = robustness(sources, zero_shot, names[0], shots=self.options.shots)
        extra = {"rows": result.rows()}
        if self.options.plot_dir:
            extra["plot"] = _save_plot(result, self.options.plot_dir, names[0], plot_robustness)
        metrics = {}
        for row in result.rows():
            target = row["target"]
            metrics[f"{target}:effective_robustness"] = row["effective_robustness"]
            metrics[f"{target}:zeroshot_acc1"] = row["zero_shot_ood"]
            metrics[f"{target}:probe_acc1"] = row["probe_ood"]
        record = {
            "dataset": ",".join(names),
            "model": self.model.name,
            "pretrained": self.model.checkpoint,
            "task": BENCHMARK_TASK["robustness"],
            "metrics": metrics,
            "language": "en",
        }
        return TaskResult(record, {}, None, extra)

    def _probe_inputs(self, train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
        from eval.linear_probe import standardize

        return standardize(train_x, *others) if self.options.standardize else [train_x, *others]

    def _record(self, data: EvalSet, task: str, metrics: dict) -> dict:
        return {
            "dataset": data.name,
            "model": self.model.name,
            "pretrained": self.model.checkpoint,
            "task": BENCHMARK_TASK[task],
            "metrics": {k: float(v) for k, v in metrics.items()},
            "language": "en",
        }


def _predictions(feats: Features, task: str, predicted: np.ndarray, top5: np.ndarray | None = None) -> pa.Table:
    """One row per test image: dataset, task, key, label, prediction, correct (and the top-5 classes)."""
    names = feats.data.classnames
    columns = {
        "dataset": [feats.data.name] * len(feats.keys),
        "task": [task] * len(feats.keys),
        "key": feats.keys,
        "label": [names[i] for i in feats.labels],
        "prediction": [names[i] for i in predicted],
        "correct": (predicted == feats.labels).tolist(),
    }
    if top5 is not None:
        columns["top5"] = [[names[i] for i in row] for row in top5]
    return pa.table(columns)


def _save_plot(result, folder: str, name: str, plot) -> str:
    """Draw the plot into `folder` (local or s3://) as robustness-NAME.png; returns its path."""
    import tempfile

    from wit_builder import storage

    path = f"{folder.rstrip('/')}/robustness-{name}.png"
    with tempfile.TemporaryDirectory() as tmp:
        plot(result, f"{tmp}/plot.png")
        with open(f"{tmp}/plot.png", "rb") as handle:
            storage.write_bytes(path, handle.read())
    return path


def _templates_file(value: str | None) -> str | None:
    """`--templates` as a file: anything that is not a shipped set's name, and must then exist."""
    import os

    if value is None or value in NAMED:
        return None
    if not os.path.isfile(value):
        raise WitError(
            f"no template set {value!r} and no such file: choose one of {', '.join(NAMED)} or give a templates file"
        )
    return value


def _need_labels(feats: Features, dataset: str) -> None:
    if feats.labels is None:
        raise WitError(f"{dataset} has no class labels: it is a retrieval set (use --task retrieval)")
    if len(feats.labels) == 0:
        raise WitError(f"no image of {dataset} could be decoded: {dict(feats.skipped)}")


def _ok_mask(data: EvalSet, feats: Features) -> list[bool]:
    keep = set(feats.keys)
    return [k in keep for k in data.keys]
