"""CLIP models in OpenAI CLIP's state-dict layout: the modified ResNet, the ViT, the text transformer, and CLIP."""

from trainer.models.clip import CLIP

__all__ = ["CLIP"]
