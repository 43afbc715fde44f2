"""Features of an evaluation set: images through CLIP's evaluation preprocess (the shorter side resized to the model's
input size, bicubic, a center crop, CLIP's mean/std: the same arithmetic as OpenCLIP's eval transform, so both see
identical pixels), texts through the model's tokenizer. A small set runs in this process; a large one as Ray Data
batch inference with an actor pool that holds the model once per actor.

Every image is size-checked from its header before it is decoded; one that is refused or fails to decode is a
counted skip (`EmbeddedImages.skipped`, by reason) and its row is marked in `ok`, never a crash."""

from __future__ import annotations

import io
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data import MEAN, STD
from wit_builder.download.guard import DEFAULT_MAX_IMAGE_AREA, check_image

RAY_MIN_IMAGES = 20_000  # from this many images on, `embed_images` runs on Ray Data (unless told otherwise)


@dataclass
class EmbeddedImages:
    """L2-normalised float32 features [n_ok, d] of the images that decoded, `ok` (bool [n]) marking which rows they
    are, and the skipped ones counted by reason."""

    features: np.ndarray
    ok: np.ndarray
    skipped: Counter = field(default_factory=Counter)


def preprocess(data: bytes, image_size: int, max_area: int = DEFAULT_MAX_IMAGE_AREA) -> torch.Tensor:
    """float32 [3, S, S]: resize so the shorter side is S (the longer one truncated as torchvision does), bicubic,
    center crop, RGB, CLIP's normalisation. Raises ValueError with the reason when the image is refused."""
    return _normalise(torch.from_numpy(crop_rgb(data, image_size, max_area).copy())[None])[0]


def crop_rgb(data: bytes, image_size: int, max_area: int = DEFAULT_MAX_IMAGE_AREA) -> np.ndarray:
    """uint8 [S, S, 3]: the pixels of `preprocess` before normalisation."""
    from PIL import Image

    refused = check_image(data, max_area)
    if refused is not None:
        raise ValueError(refused)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        w, h = im.size
        if min(w, h) < 1:
            raise ValueError("empty image")
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(image_size * long / short)
        size = (image_size, new_long) if w <= h else (new_long, image_size)
        if size != (w, h):
            im = im.resize(size, Image.BICUBIC)
        w, h = im.size
        top, left = int(round((h - image_size) / 2.0)), int(round((w - image_size) / 2.0))
        im = im.crop((left, top, left + image_size, top + image_size))
        if im.mode != "RGB":
            with warnings.catch_warnings():  # palette transparency is dropped, as OpenCLIP's convert("RGB") drops it
                warnings.filterwarnings("ignore", "Palette images with Transparency", UserWarning)
                im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8)


_MEAN = torch.tensor(MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(STD).view(1, 3, 1, 1)


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [n, S, S, 3] -> float32 [n, 3, S, S] in CLIP's normalisation (one pass over the batch)."""
    return (pixels.permute(0, 3, 1, 2).float().div_(255) - _MEAN) / _STD


def preprocess_batch(images: list[bytes], image_size: int) -> tuple[torch.Tensor, list[str]]:
    """The good images of a batch stacked [m, 3, S, S], and per input "" (good) or the reason it was skipped."""
    crops, reasons = [], []
    for data in images:
        try:
            crops.append(crop_rgb(bytes(data), image_size))
            reasons.append("")
        except Exception as err:  # noqa: BLE001 - any decoder failure is one skipped image, never a crash
            reasons.append(_reason(err))
    if not crops:
        return torch.zeros((0, 3, image_size, image_size)), reasons
    return _normalise(torch.from_numpy(np.stack(crops))), reasons


def _reason(err: Exception) -> str:
    text = str(err)
    if text.startswith("image area too large"):
        return "image too large"
    return "bad image"


@torch.no_grad()
def encode_images(model, batch: torch.Tensor) -> np.ndarray:
    """L2-normalised float32 image features of a preprocessed batch."""
    if batch.shape[0] == 0:
        return np.zeros((0, model.config.embed_dim), dtype=np.float32)
    return F.normalize(model.encode_image(batch).float(), dim=-1).numpy()


def embed_images_local(model, images: list[bytes], batch_size: int = 64, progress: bool = False) -> EmbeddedImages:
    """In-process embedding of `images` (encoded files), `batch_size` at a time; a background thread decodes the next
    batch while the model runs on this one (Pillow and torch both release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    size = model.config.vision.image_size
    feats, ok, skipped = [], np.zeros(len(images), dtype=bool), Counter()
    starts = list(range(0, len(images), batch_size))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(images), desc="embed images", unit="img", leave=False)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(preprocess_batch, images[0:batch_size], size) if starts else None
        for n, start in enumerate(starts):
            batch, reasons = pending.result()
            if n + 1 < len(starts):
                nxt = starts[n + 1]
                pending = pool.submit(preprocess_batch, images[nxt : nxt + batch_size], size)
            feats.append(encode_images(model, batch))
            for i, reason in enumerate(reasons):
                ok[start + i] = not reason
                if reason:
                    skipped[reason] += 1
            if bar is not None:
                bar.update(len(reasons))
    if bar is not None:
        bar.close()
    dim = model.config.embed_dim
    return EmbeddedImages(np.concatenate(feats) if feats else np.zeros((0, dim), np.float32), ok, skipped)


class _Embedder:
    """A Ray Data actor: the model is built once per actor from its state, then embeds batches of image bytes."""

    def __init__(self, config, state):
        import ray

        from trainer.models.clip import CLIP

        torch.set_num_threads(1)
        self.model = CLIP(config)
        self.model.load_state_dict(ray.get(state) if isinstance(state, ray.ObjectRef) else state)
        self.model.eval()

    def __call__(self, rows: dict) -> dict:
        batch, reasons = preprocess_batch(list(rows["image"]), self.model.config.vision.image_size)
        feats = encode_images(self.model, batch)
        out = np.zeros((len(reasons), feats.shape[1]), dtype=np.float32)
        good = np.array([not r for r in reasons], dtype=bool)
        out[good] = feats
        return {"index": rows["index"], "reason": np.array(reasons, dtype=object), "features": out}


def embed_images_ray(model, images: list[bytes], batch_size: int = 64, actors: int | None = None) -> EmbeddedImages:
    """Ray Data batch inference: the images as blocks, an actor pool that holds the model (one CPU each), results put
    back in input order. Uses the running Ray cluster, or starts a local one."""
    import pyarrow as pa

    from pipelines.ray_env import init_local

    ray = init_local()
    n_actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    table = pa.table({"index": np.arange(len(images), dtype=np.int64), "image": pa.array(images, pa.binary())})
    blocks = max(1, min(len(images) // batch_size, n_actors * 4))  # blocks made here: no repartition task to wait on
    step = -(-len(images) // blocks)
    ds = ray.data.from_arrow([table.slice(i, step) for i in range(0, len(images), step)])
    ds = ds.map_batches(
        _Embedder,
        fn_constructor_args=(model.config, ray.put(state)),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=n_actors),
        num_cpus=1,
    )
    dim = model.config.embed_dim
    features = np.zeros((len(images), dim), dtype=np.float32)
    ok = np.zeros(len(images), dtype=bool)
    skipped: Counter = Counter()
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        for index, reason, feat in zip(batch["index"], batch["reason"], batch["features"]):
            ok[index] = not reason
            features[index] = feat
            if reason:
                skipped[str(reason)] += 1
    return EmbeddedImages(features[ok], ok, skipped)


def embed_images(model, images: list[bytes], batch_size: int = 64, ray: bool | None = None, progress: bool = False):
    """Features of `images`: in process for a small set, Ray Data batch inference from RAY_MIN_IMAGES on (or when
    `ray` says so)."""
    use_ray = len(images) >= RAY_MIN_IMAGES if ray is None else ray
    if use_ray:
        return embed_images_ray(model, images, batch_size)
    return embed_images_local(model, images, batch_size, progress)


@torch.no_grad()
def embed_texts(model, tokenizer, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """L2-normalised float32 text features [n, d]."""
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = torch.as_tensor(tokenizer.tokenize(texts[start : start + batch_size]))
        out.append(F.normalize(model.encode_text(tokens).float(), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.embed_dim), dtype=np.float32)
