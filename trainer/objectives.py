"""The paper's three training objectives on one image encoder (Radford et al. 2021, section 2.3 and Figure 2):

- `contrastive`: CLIP itself (trainer.models.CLIP with trainer.loss.ClipLoss).
- `bow`: predict the caption's bag of words from the image. A linear head maps the image features to a distribution
  over the vocabulary; the loss is the cross-entropy against the caption's normalised word counts.
- `caption`: a transformer language model that predicts the caption token by token, the image features projected
  into its first position (where the start-of-text token would sit); the loss is the mean next-token cross-entropy.

Both generative heads read the image features L2-normalised and scaled by sqrt(embed_dim) (unit-variance entries),
the same features `wit eval` computes, so the zero-shot scorers below work on cached evaluation features:
`bow_scores` (a prompt's bag-of-words score: the negative bag-of-words loss with the prompt as target) and
`caption_log_likelihood` (the prompt's log-likelihood given the image). Words are BPE tokens between the
start-of-text token (position 0) and the end-of-text token (the highest id in a row); padding after it is ignored.
The heads predict over the run's tokenizer: OpenAI's 49,408 tokens, or a smaller BPE of the corpus (`wit tokenizer
train`), which makes both heads' softmax, and so their training and scoring, proportionally cheaper.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig, get_config

OBJECTIVES = ("contrastive", "bow", "caption")
PAIRS_PER_CHUNK = 512  # image-prompt pairs the caption scorer runs at once (bounds the [positions, vocab] logits)


class UnknownObjective(ValueError):
    """An objective name other than OBJECTIVES."""


def check_objective(name: str) -> str:
    if name not in OBJECTIVES:
        raise UnknownObjective(f"unknown objective {name!r}: choose one of {', '.join(OBJECTIVES)}")
    return name


def head_input(features: torch.Tensor) -> torch.Tensor:
    """Image features as the generative heads read them: L2-normalised, times sqrt(dim)."""
    return F.normalize(features.float(), dim=-1) * math.sqrt(features.shape[-1])


def caption_span(tokens: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per row the end-of-text position (the highest id), and the columns any row needs (max EOT + 1)."""
    eot = tokens.argmax(dim=-1)
    return eot, int(eot.max().item()) + 1


class _ImageModel(nn.Module):
    """The shared part: CLIP's image tower (the same `visual` module and config) and the interface `wit eval` uses."""

    objective = ""

    def __init__(self, config: ModelConfig | str):
        super().__init__()
        from trainer.models.clip import build_visual

        self.config = get_config(config) if isinstance(config, str) else config
        self.visual = build_visual(self.config)

    @property
    def image_size(self) -> int:
        return self.visual.image_size

    @property
    def context_length(self) -> int:
        return self.config.text.context_length

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.visual(images)
        return F.normalize(x, dim=-1) if normalize else x

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)


class BowModel(_ImageModel):
    """Image tower + a linear head over the vocabulary: forward(images, tokens) -> (word logits [B, V], tokens)."""

    objective = "bow"

    def __init__(self, config: ModelConfig | str):
        super().__init__(config)
        self.bow_head = nn.Linear(self.config.embed_dim, self.config.text.vocab_size)

    def word_log_probs(self, image_features: torch.Tensor) -> torch.Tensor:
        """log p(word | image) [N, V] from image features (any scale: they are normalised first)."""
        return F.log_softmax(self.bow_head(head_input(image_features)), dim=-1)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor):
        return self.bow_head(head_input(self.visual(images))), tokens


def bags_of_words(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """float32 [B, V]: each row's word counts (positions 1 .. EOT-1) divided by their total; an empty caption's row
    is all zero."""
    eot, width = caption_span(tokens)
    cols = torch.arange(width, device=tokens.device)
    words = (cols[None] >= 1) & (cols[None] < eot[:, None])
    bags = torch.zeros(tokens.shape[0], vocab_size, device=tokens.device)
    bags.scatter_add_(1, tokens[:, :width] * words, words.float())
    return bags / bags.sum(dim=1, keepdim=True).clamp_min(1.0)


def bow_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean over the captions with at least one word of the cross-entropy between their normalised bag of words and
    softmax(logits); zero (with a gradient path) when no caption in the batch has a word."""
    bags = bags_of_words(tokens, logits.shape[1])
    has_words = bags.sum(dim=1) > 0
    per_row = -(bags * F.log_softmax(logits.float(), dim=-1)).sum(dim=1)
    return per_row[has_words].mean() if bool(has_words.any()) else logits.sum() * 0.0


def bow_scores(model: BowModel, image_features: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """[N, K]: each prompt's bag-of-words score for each image, sum_w q(w) log p(w | image) with q the prompt's
    normalised word counts (the negative of the training loss with the prompt as the caption)."""
    with torch.no_grad():
        log_probs = model.word_log_probs(image_features)
        return log_probs @ bags_of_words(prompts, log_probs.shape[1]).T


class CaptionModel(_ImageModel):
    """Image tower + a causal text transformer that predicts the caption; its output layer is the token embedding
    (tied). forward(images, tokens) -> (logits [P, V] at the P predicted positions, their target ids [P])."""

    objective = "caption"

    def __init__(self, config: ModelConfig | str):
        super().__init__(config)
        from trainer.models.transformer import Transformer

        t = self.config.text
        self.image_prefix = nn.Linear(self.config.embed_dim, t.width)
        self.token_embedding = nn.Embedding(t.vocab_size, t.width)
        self.positional_embedding = nn.Parameter(torch.empty(t.context_length, t.width))
        self.transformer = Transformer(t.width, t.layers, t.heads, t.mlp_ratio, self.config.quick_gelu)
        self.ln_final = nn.LayerNorm(t.width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        self.transformer.init_parameters()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        super().set_grad_checkpointing(enable)
        self.transformer.grad_checkpointing = enable

    def decode(self, image_features: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states [B, W-1, width] that predict tokens[:, 1:W], and the mask [B, W-1] of the positions to
        score (every token after the start up to and including the end-of-text), W = the longest row's EOT + 1."""
        if tokens.shape[1] > self.positional_embedding.shape[0]:
            raise ValueError(f"token rows are {tokens.shape[1]} long, the context is {self.context_length}")
        eot, width = caption_span(tokens)
        width = max(width, 2)
        prefix = self.image_prefix(head_input(image_features))[:, None]
        x = torch.cat([prefix, self.token_embedding(tokens[:, 1 : width - 1])], dim=1)
        x = self.ln_final(self.transformer(x + self.positional_embedding[: width - 1], causal=True))
        targets = torch.arange(1, width, device=tokens.device)
        return x, targets[None] <= eot[:, None]

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.token_embedding.weight.T

    def forward(self, images: torch.Tensor, tokens: torch.Tensor):
        hidden, mask = self.decode(self.visual(images), tokens)
        return self.vocab_logits(hidden[mask]), tokens[:, 1 : hidden.shape[1] + 1][mask]


def caption_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over every predicted position of the batch."""
    return F.cross_entropy(logits.float(), targets)


def caption_log_likelihood(
    model: CaptionModel, image_features: torch.Tensor, prompts: torch.Tensor, chunk: int = PAIRS_PER_CHUNK
) -> torch.Tensor:
    """[N, K]: log p(prompt | image) summed over the prompt's tokens after the start, end-of-text included.

    The tokens every prompt shares before the first that differs (a template's words before the class name) are run
    through the transformer once per image: their probabilities are summed there, and their keys and values are
    cached, so each image-prompt pair runs only its own tokens (the class name onwards) against that cache."""
    n, k = image_features.shape[0], prompts.shape[0]
    eot, width = caption_span(prompts)
    prompts = prompts[:, : max(width, 2)]
    differs = (prompts != prompts[:1]).any(dim=0).nonzero()
    shared = min(int(differs[0]) if len(differs) else prompts.shape[1], int(eot.min()))  # positions 0..shared-1
    own = prompts[:, shared:-1]  # each prompt's own input tokens; they predict targets shared+1 .. width-1
    targets = prompts[:, shared + 1 :]
    scored = torch.arange(shared + 1, prompts.shape[1])[None] <= eot[:, None]  # [K, width-1-shared]: up to EOT
    out = torch.empty(n, k)
    per_chunk = max(1, chunk // k)
    with torch.no_grad():
        for start in range(0, n, per_chunk):
            rows = torch.arange(start, min(start + per_chunk, n))
            r = len(rows)
            x = model.image_prefix(head_input(image_features[rows]))[:, None]
            x = torch.cat([x, model.token_embedding(prompts[:1, 1:shared]).expand(r, -1, -1)], dim=1)
            x = x + model.positional_embedding[:shared]
            cache = []
            for block in model.transformer.resblocks:
                x, keys, values = _block_with_cache(block, x, None, None)
                cache.append((keys, values))
            log_probs = F.log_softmax(model.vocab_logits(model.ln_final(x)).float(), dim=-1)  # [r, shared, V]
            prefix_ids = prompts[0, 1:shared]
            common = log_probs[:, : shared - 1].gather(2, prefix_ids.expand(r, -1)[..., None]).sum(dim=(1, 2))
            first = log_probs[:, shared - 1][:, prompts[:, shared]]  # [r, K]: each prompt's token at `shared`
            total = common[:, None] + first
            if own.shape[1]:
                image = torch.arange(r).repeat_interleave(k)  # pair -> its image in the chunk (pairs image-major)
                y = (
                    model.token_embedding(own).repeat(r, 1, 1)
                    + model.positional_embedding[shared : prompts.shape[1] - 1]
                )
                for block, (keys, values) in zip(model.transformer.resblocks, cache):
                    y, _, _ = _block_with_cache(block, y, keys[image], values[image])
                mask = scored.repeat(r, 1)
                logits = model.vocab_logits(model.ln_final(y)[mask]).float()
                wanted = targets.repeat(r, 1)[mask]
                picked = logits.gather(1, wanted[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
                pair = torch.arange(r * k)[:, None].expand_as(mask)[mask]
                total += torch.zeros(r * k).index_add_(0, pair, picked).view(r, k)
            out[rows] = total
    return out


def _block_with_cache(block, x: torch.Tensor, past_keys: torch.Tensor | None, past_values: torch.Tensor | None):
    """One residual attention block (trainer.models.transformer) on new tokens x [b, m, width] that attend causally
    to themselves and to every cached position before them; returns (output, their keys, their values)."""
    attn = block.attn
    b, m, d = x.shape
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, keys, values = qkv.view(b, m, 3, attn.heads, d // attn.heads).permute(2, 0, 3, 1, 4).unbind(0)
    all_keys = keys if past_keys is None else torch.cat([past_keys, keys], dim=2)
    all_values = values if past_values is None else torch.cat([past_values, values], dim=2)
    past = all_keys.shape[2] - m
    visible = torch.arange(past + m)[None] <= (past + torch.arange(m))[:, None]  # [m, past + m]
    out = F.scaled_dot_product_attention(q, all_keys, all_values, attn_mask=visible)
    x = x + attn.out_proj(out.transpose(1, 2).reshape(b, m, d))
    return x + block.mlp(block.ln_2(x)), keys, values


def prompt_scores(model: nn.Module, image_features: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """[N, K] zero-shot scores of K tokenised prompts for a generative model (bow or caption)."""
    if isinstance(model, BowModel):
        return bow_scores(model, image_features, prompts)
    if isinstance(model, CaptionModel):
        return caption_log_likelihood(model, image_features, prompts)
    raise TypeError(f"{type(model).__name__} is not a generative (bow or caption) model")


def build_model(config: ModelConfig | str, objective: str = "contrastive", vocab_size: int | None = None) -> nn.Module:
    """The model an objective trains: CLIP, BowModel or CaptionModel around the same image tower. The generative
    heads predict over `vocab_size` tokens (the run's tokenizer; None: the config's, OpenAI's 49,408)."""
    from trainer.models.clip import CLIP

    config = get_config(config) if isinstance(config, str) else config
    if vocab_size is not None and objective != "contrastive":
        config = config.replace(text=dataclasses.replace(config.text, vocab_size=vocab_size))
    return {"contrastive": CLIP, "bow": BowModel, "caption": CaptionModel}[check_objective(objective)](config)


def tokenizer_vocab_size(tokenizer: str | None) -> int | None:
    """The vocabulary size of a run's BPE merges file (None for OpenAI's, the models' default)."""
    if tokenizer is None:
        return None
    from trainer.tokenizer import load_tokenizer

    return load_tokenizer(tokenizer).vocab_size


def build_loss(objective: str) -> nn.Module | object:
    """The objective's loss, called as loss(*model(images, tokens))."""
    from trainer.loss import ClipLoss

    return {"contrastive": ClipLoss, "bow": lambda: bow_loss, "caption": lambda: caption_loss}[
        check_objective(objective)
    ]()
