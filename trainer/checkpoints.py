"""Load CLIP weights from a checkpoint file on disk (local or s3://) into our model: a state dict in OpenAI's layout
(what `wit export --format openai` and OpenCLIP's `model.state_dict()` save), an OpenCLIP training checkpoint
({"state_dict": ...}, DDP's `module.` prefix), a `wit export --format open_clip` file, or a `wit train` checkpoint
({"model": ...}). Pickled files load with torch.load(weights_only=True); OpenAI's released TorchScript archives are
read as TorchScript (no pickled code runs either way)."""

from __future__ import annotations

import io
import warnings
import zipfile

import torch

from trainer.models.clip import CLIP, openai_state_dict
from wit_builder import storage
from wit_builder.errors import WitError


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file in OpenAI's key layout."""
    if not storage.exists(path):
        raise WitError(f"checkpoint {path} does not exist")
    data = storage.read_bytes(path)
    if _is_torchscript(data):
        with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export; OpenAI's files are jit
            warnings.simplefilter("ignore", FutureWarning)
            state = torch.jit.load(io.BytesIO(data), map_location="cpu").state_dict()
    else:
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - truncated zip, foreign pickle: all mean "not a checkpoint we read"
            raise WitError(
                f"{path} is not a readable CLIP checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
            ) from None
    for key in ("state_dict", "model"):  # OpenCLIP's training checkpoints, ours
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise WitError(f"{path} holds no state dict of tensors")
    return openai_state_dict({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})


def load_clip(path: str, model: str) -> CLIP:
    """Our `model` (a name of trainer.config.MODELS) with the weights of the checkpoint file `path` (strict)."""
    clip = CLIP(model)
    state = read_state_dict(path)
    try:
        clip.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()
        raise WitError(
            f"{path} does not fit model {model!r} ({' '.join(first[1:3]).strip()[:300]}): give the model it was "
            "trained as"
        ) from None
    return clip.eval()


def _is_torchscript(data: bytes) -> bool:
    """TorchScript archives are zips holding code/ and constants.pkl besides the data."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False
