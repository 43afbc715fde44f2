"""The settings of one training run (`wit train`), with the paper's defaults where they apply (Radford et al. 2021,
section 2.5 and tables 19-20): a global batch of 32,768, 2,000 warm-up steps, AdamW with the per-family lr, betas,
eps and weight decay 0.2 (trainer.optim.PAPER_ADAM; `lr`/`weight_decay` None means the paper's), 32 epochs.

`RESUME_KEYS` are the settings that shape the loss curve: a resumed run must repeat them exactly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from trainer.optim import PAPER_WARMUP_STEPS

PAPER_BATCH = 32_768
PAPER_EPOCHS = 32


@dataclass(frozen=True)
class TrainConfig:
    data: str  # a build folder, a folder of .tar shards, a brace pattern, or one .tar
    model: str  # a name of trainer.config.MODELS (or an OpenCLIP alias)
    out: str  # the run folder RUN (local or s3://): config.json, metrics.jsonl, checkpoints
    objective: str = "contrastive"  # contrastive (CLIP) | bow | caption (trainer.objectives; the paper's Figure 2)
    workers: int = 1  # Ray Train workers (one process each; DDP over gloo on CPU, nccl on GPU)
    gpus_per_worker: float = 0.0  # 0: CPU training
    cpus_per_worker: float = 1.0  # CPU reservation of each worker (torch threads = max(1, round(this)))
    epochs: int = PAPER_EPOCHS
    batch_size: int = PAPER_BATCH  # the GLOBAL batch (all workers together); must divide by workers
    lr: float | None = None  # None: the paper's 5e-4
    weight_decay: float | None = None  # None: the paper's 0.2
    warmup: int = PAPER_WARMUP_STEPS
    grad_clip: float | None = None  # max global gradient norm; None: no clipping (the paper names none)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (trainer.loop.Precision)
    checkpoint_every: int = 1000  # steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2  # the newest checkpoints kept (0: every one, e.g. to evaluate along the run)
    log_every: int = 1  # steps between metrics.jsonl lines
    shuffle_buffer: int = 1000  # rows of each worker's within-epoch shuffle buffer (0: stream order)
    seed: int = 0
    tokenizer: str | None = None  # a BPE merges file (wit tokenizer train); None: OpenAI's vocabulary
    max_steps: int | None = None  # stop after this many steps in all (the schedule still spans every epoch)
    max_failures: int = 0  # worker failures Ray Train recovers from (restarting from the last checkpoint)
    data_stall_timeout: float = 600.0  # seconds the data stream may move nothing before the workers fail (-1: never)
    grad_checkpointing: bool = (
        False  # recompute both towers' activations in the backward pass: less memory, ~30 % more time
    )
    compile: bool = False  # torch.compile the model (a one-off compile cost; pays on long GPU runs)
    resume: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def defaults(cls) -> dict:
        """The default of every field that has one (what a config.json written before a field existed meant)."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

    @property
    def local_batch(self) -> int:
        return self.batch_size // self.workers

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


RESUME_KEYS = (
    "data",
    "model",
    "objective",
    "workers",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup",
    "grad_clip",
    "precision",
    "shuffle_buffer",
    "seed",
    "tokenizer",
)
