"""Contrastive training of the near-duplicate embedder on the corpus's own images: two independent augmentations
of one image are positives, every other image in the batch a negative (NT-Xent); plus embedding, save and load."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from eval.neardup.augment import augment
from eval.neardup.images import decode
from eval.neardup.model import DetectorConfig, Embedder, thumbnail, to_tensor, torch_threads
from wit_builder.errors import WitError

FORMAT = "wit-neardup-v1"


@dataclass
class Embeddings:
    """One row per input image (zeros where it could not be used), the mask of used rows and the skip reasons."""

    vectors: np.ndarray
    ok: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over 2N unit vectors: row i of `a` must pick row i of `b` among all others, and vice versa."""
    z = torch.cat([a, b])
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = a.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return torch.nn.functional.cross_entropy(sim, target)


def decode_all(images: list[bytes], max_side: int) -> tuple[list[Image.Image | None], dict[str, int]]:
    """Decoded RGBA images shrunk to at most `max_side` (None where refused or broken) and the skip counts."""
    out: list[Image.Image | None] = []
    skipped: dict[str, int] = {}
    for data in images:
        image, error = decode(data)
        if image is None:
            skipped[error] = skipped.get(error, 0) + 1
            out.append(None)
            continue
        image = image.convert("RGBA")
        image.thumbnail((max_side, max_side), Image.BILINEAR)
        out.append(image)
    return out, skipped


def _views(images: list[Image.Image], idx: np.ndarray, rng: np.random.Generator, cfg: DetectorConfig) -> torch.Tensor:
    return to_tensor(np.stack([thumbnail(augment(images[i], rng, cfg.n_ops), cfg.image_size) for i in idx]))


def nearest(vectors: np.ndarray, k: int) -> np.ndarray:
    """N x k indices: each row's own index then its k - 1 nearest others by cosine."""
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def _batch(n: int, size: int, neighbours: np.ndarray | None, hard: float, rng: np.random.Generator) -> np.ndarray:
    """`size` distinct image indices: about `hard` of them whole neighbour clusters around random seeds, the rest
    uniform (all uniform before the first mining)."""
    if neighbours is None or hard <= 0:
        return rng.choice(n, size=size, replace=False)
    chosen: dict[int, None] = {}
    for seed in rng.permutation(n):
        if len(chosen) >= round(hard * size):
            break
        for j in neighbours[seed]:
            chosen.setdefault(int(j), None)
    picked = list(chosen)[:size]
    rest = np.setdiff1d(np.arange(n), picked)
    fill = rng.choice(rest, size=size - len(picked), replace=False)
    return np.concatenate([np.array(picked, dtype=np.int64), fill.astype(np.int64)])


def train_detector(images: list[bytes], cfg: DetectorConfig | None = None) -> tuple[Embedder, list[dict]]:
    """Train an Embedder from scratch on `images` (seeded, deterministic on CPU); history has loss per logged step."""
    cfg = cfg or DetectorConfig()
    with torch_threads(cfg.threads):
        return _train(images, cfg)


def _train(images: list[bytes], cfg: DetectorConfig) -> tuple[Embedder, list[dict]]:
    decoded, _ = decode_all(images, 2 * cfg.image_size)
    usable = [im for im in decoded if im is not None]
    if len(usable) < 2:
        raise WitError(f"near-duplicate training needs at least 2 decodable images, got {len(usable)}")
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))
    )
    batch = min(cfg.batch, len(usable))
    model.train()
    history: list[dict] = []
    started = time.time()
    neighbours = None
    for step in range(cfg.steps):
        if cfg.hard_fraction > 0 and step >= cfg.steps // 4 and (step - cfg.steps // 4) % cfg.mine_every == 0:
            neighbours = nearest(embed_pil(model, usable, cfg.image_size), cfg.cluster)
            model.train()
        idx = _batch(len(usable), batch, neighbours, cfg.hard_fraction, rng)
        a, b = _views(usable, idx, rng, cfg), _views(usable, idx, rng, cfg)
        loss = nt_xent(model(a), model(b), cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0 or step == cfg.steps - 1:
            history.append(
                {"step": step, "loss": loss.item(), "lr": sched.get_last_lr()[0], "s": time.time() - started}
            )
    model.eval()
    return model, history


@torch.no_grad()
def embed_pil(model: Embedder, images: list[Image.Image], image_size: int, batch: int = 256) -> np.ndarray:
    """float32 N x D unit vectors of decoded images."""
    model.eval()
    with torch_threads(1):
        out = [
            model(to_tensor(np.stack([thumbnail(im, image_size) for im in images[i : i + batch]]))).numpy()
            for i in range(0, len(images), batch)
        ]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.embed_dim), np.float32)


def embed(model: Embedder, images: list[bytes], batch: int = 256, image_size: int | None = None) -> Embeddings:
    """Embed encoded images; a refused or undecodable one is a counted skip with a zero row and ok=False."""
    size = image_size or model.image_size
    decoded, skipped = decode_all(images, 4 * size)
    ok = np.array([im is not None for im in decoded], dtype=bool)
    vectors = np.zeros((len(images), model.embed_dim), np.float32)
    if ok.any():
        vectors[ok] = embed_pil(model, [im for im in decoded if im is not None], size, batch)
    return Embeddings(vectors, ok, skipped)


def build_model(cfg: DetectorConfig) -> Embedder:
    """An Embedder that remembers its input size (random init; seeded by cfg.seed)."""
    torch.manual_seed(cfg.seed)
    model = Embedder(cfg)
    model.eval()
    return model


def save_detector(model: Embedder, cfg: DetectorConfig, path: str | Path, threshold: float | None = None) -> None:
    """Write weights, config and (optionally) the calibrated threshold to one file torch.load(weights_only=True) reads."""
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    torch.save({"format": FORMAT, "config": config, "threshold": threshold, "state_dict": model.state_dict()}, path)


def load_detector(path: str | Path) -> tuple[Embedder, DetectorConfig, float | None]:
    """(model in eval mode, its config, the saved threshold or None) from a save_detector file."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WitError(f"no near-duplicate detector at {path}: train one and save it with save_detector") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise WitError(f"{path} is not a readable near-duplicate detector ({type(err).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise WitError(f"{path} is not a near-duplicate detector file (expected format {FORMAT})")
    known = {f.name for f in dataclasses.fields(DetectorConfig)}
    raw = {"gray": False} | {k: tuple(v) if isinstance(v, list) else v for k, v in blob["config"].items() if k in known}
    cfg = DetectorConfig(**raw)
    model = build_model(cfg)
    model.load_state_dict(blob["state_dict"])
    return model, cfg, blob.get("threshold")
