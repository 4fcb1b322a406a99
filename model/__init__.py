"""The dalle library: discrete VAE, transformer, tokenizer, sampling, training and checkpoints.

It never prints: it logs through `logging` and reports progress through callbacks.
"""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import TransformerConfig, VAEConfig
from .errors import CheckpointError, ConfigError, DalleError, DatasetError, PromptError
from .pipeline import TextToImage, default_model_path
from .sampling import SamplingSettings, sample_image_tokens
from .tokenizer import CaptionTokenizer
from .transformer import DalleTransformer
from .vae import DiscreteVAE

__all__ = [
    "CaptionTokenizer",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "DalleError",
    "DalleTransformer",
    "DatasetError",
    "DiscreteVAE",
    "PromptError",
    "SamplingSettings",
    "TextToImage",
    "TransformerConfig",
    "VAEConfig",
    "default_model_path",
    "load_checkpoint",
    "sample_image_tokens",
    "save_checkpoint",
]
