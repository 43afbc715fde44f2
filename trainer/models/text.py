"""CLIP's text transformer (Radford et al. 2021, section 2.4): token + learned position embeddings, a causally masked
transformer, `ln_final`, and the features of the end-of-text token (the highest id in each row) projected by
`text_projection`."""

from __future__ import annotations

import torch
from torch import nn

from trainer.models.transformer import Transformer


class TextTransformer(nn.Module):
    """The text tower on its own. Inside `CLIP` its parts sit at the top level (token_embedding, positional_embedding,
    transformer, ln_final, text_projection), as in OpenAI's state dict; `encode_text` serves both."""

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
        context_length: int = 77,
        vocab_size: int = 49408,
        mlp_ratio: float = 4.0,
        quick_gelu: bool = True,
    ):
        super().__init__()
        self.context_length, self.vocab_size = context_length, vocab_size
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_ratio, quick_gelu)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, output_dim))
        self.init_parameters()

    def init_parameters(self) -> None:
        """OpenAI's initialisation of the text tower."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        self.transformer.init_parameters()
        nn.init.normal_(self.text_projection, std=self.transformer.width**-0.5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return encode_text(self, tokens)


def encode_text(tower: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Text features of `tokens` [batch, context] for any module holding the text tower's parts."""
    if tokens.shape[1] != tower.positional_embedding.shape[0]:
        raise ValueError(
            f"token rows are {tokens.shape[1]} long, the model's context is {tower.positional_embedding.shape[0]}"
        )
    x = tower.token_embedding(tokens) + tower.positional_embedding
    x = tower.ln_final(tower.transformer(x, causal=True))
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # end-of-text: the highest id
    return x @ tower.text_projection
