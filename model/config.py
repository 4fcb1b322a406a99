"""Model configs: dataclasses that are validated on creation and saved with the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from .errors import ConfigError

QUANTIZERS = ("gumbel", "vq_ema")

T = TypeVar("T", bound="_JSONConfig")


def _require(ok: bool, name: str, value: object, rule: str, fix: str) -> None:
    if not ok:
        raise ConfigError(f"invalid {name}={value!r}: {rule}; {fix}")


class _JSONConfig:
    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__} is not valid JSON ({exc}); re-save the checkpoint") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has unknown fields {unknown}; the checkpoint was written by a newer dalle, so upgrade"
            )
        for key, value in data.items():
            if isinstance(value, list):
                data[key] = tuple(value)
        return cls(**data)


@dataclass
class VAEConfig(_JSONConfig):
    """Discrete VAE: an image of `image_size`^2 pixels becomes a grid of codebook tokens.

    The grid side is image_size / 2**len(hidden_dims), because every encoder
    level halves the resolution.
    """

    image_size: int = 64
    hidden_dims: tuple[int, ...] = (32, 64, 128)  # channels per encoder level, reversed in the decoder
    num_res_blocks: int = 1  # residual blocks per level
    # The decoder may differ from the encoder, e.g. a larger one trained later on frozen tokens.
    # None: the encoder's hidden_dims reversed, and num_res_blocks.
    decoder_dims: tuple[int, ...] | None = None  # channels per decoder level, from the token grid up to pixels
    decoder_res_blocks: int | None = None  # residual blocks per decoder level
    codebook_size: int = 512  # K, number of codebook entries
    codebook_dim: int = 64  # width of each codebook embedding
    quantizer: str = "vq_ema"  # "gumbel" (DALL-E dVAE relaxation) or "vq_ema" (VQ-VAE, EMA codebook)
    recon_loss: str = "l1"  # "l1" (sharper edges) or "mse"
    # gumbel: softmax temperature is annealed from tau_start to tau_end; kl_weight scales KL(q || uniform).
    tau_start: float = 1.0
    tau_end: float = 0.0625
    kl_weight: float = 1e-4
    # vq_ema: commitment loss weight and EMA decay of the codebook statistics.
    commitment_weight: float = 0.25
    ema_decay: float = 0.99

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(self.hidden_dims)
        _require(self.quantizer in QUANTIZERS, "quantizer", self.quantizer, f"must be one of {QUANTIZERS}", "pick one")
        _require(self.recon_loss in ("l1", "mse"), "recon_loss", self.recon_loss, "must be l1 or mse", "pick one")
        _require(len(self.hidden_dims) >= 1, "hidden_dims", self.hidden_dims, "needs at least one level", "add one")
        _require(
            all(d > 0 for d in self.hidden_dims), "hidden_dims", self.hidden_dims, "must be positive", "fix the widths"
        )
        if self.decoder_dims is not None:
            self.decoder_dims = tuple(self.decoder_dims)
            _require(
                len(self.decoder_dims) == len(self.hidden_dims) and all(d > 0 for d in self.decoder_dims),
                "decoder_dims",
                self.decoder_dims,
                f"needs {len(self.hidden_dims)} positive widths, one per encoder level",
                "give one width per level",
            )
        if self.decoder_res_blocks is not None:
            _require(self.decoder_res_blocks >= 0, "decoder_res_blocks", self.decoder_res_blocks, "must be >= 0", "fix")
        factor = 2 ** len(self.hidden_dims)
        _require(
            self.image_size >= factor and self.image_size % factor == 0,
            "image_size",
            self.image_size,
            f"must be a positive multiple of {factor} (2 ** number of levels)",
            "choose another size",
        )
        _require(self.codebook_size >= 2, "codebook_size", self.codebook_size, "must be at least 2", "raise it")
        _require(self.codebook_dim >= 1, "codebook_dim", self.codebook_dim, "must be positive", "raise it")
        _require(self.num_res_blocks >= 0, "num_res_blocks", self.num_res_blocks, "must be >= 0", "fix it")
        _require(0 < self.tau_end <= self.tau_start, "tau_end", self.tau_end, "must be in (0, tau_start]", "fix it")
        _require(0 < self.ema_decay < 1, "ema_decay", self.ema_decay, "must be in (0, 1)", "use e.g. 0.99")

    @property
    def grid_size(self) -> int:
        """Side of the token grid (h = w)."""
        return self.image_size // 2 ** len(self.hidden_dims)

    @property
    def decoder_widths(self) -> tuple[int, ...]:
        """Channels per decoder level, coarsest first."""
        return self.decoder_dims if self.decoder_dims is not None else tuple(reversed(self.hidden_dims))

    @property
    def decoder_blocks(self) -> int:
        return self.decoder_res_blocks if self.decoder_res_blocks is not None else self.num_res_blocks


@dataclass
class TransformerConfig(_JSONConfig):
    """Decoder-only transformer over [text segment | image token grid]."""

    text_vocab_size: int = 1024  # from the tokenizer, including the pad and bos tokens
    text_len: int = 32  # fixed text segment length, bos included
    image_vocab_size: int = 512  # = VAE codebook_size
    grid_size: int = 8  # image tokens form a grid_size x grid_size grid
    n_layer: int = 6
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0
    text_loss_weight: float = 1.0 / 8.0  # image loss gets 1 - this, as in DALL-E
    caption_dropout: float = 0.1  # share of captions replaced by empty text, for classifier-free guidance
    pad_token_id: int = 0
    bos_token_id: int = 1
    extra: dict[str, str] = field(default_factory=dict)  # free-form notes, saved as is

    def __post_init__(self) -> None:
        for name in ("text_vocab_size", "text_len", "image_vocab_size", "grid_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value > 0, name, value, "must be a positive integer", "fix it")
        _require(self.text_len >= 2, "text_len", self.text_len, "must be >= 2 (bos plus one token)", "raise it")
        _require(
            self.n_embd % self.n_head == 0,
            "n_embd",
            self.n_embd,
            f"must be divisible by n_head={self.n_head}",
            "change one of them",
        )
        _require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)", "fix it")
        _require(0.0 <= self.caption_dropout < 1.0, "caption_dropout", self.caption_dropout, "must be in [0, 1)", "fix")
        _require(
            0.0 < self.text_loss_weight < 1.0, "text_loss_weight", self.text_loss_weight, "must be in (0, 1)", "fix"
        )

    @property
    def image_len(self) -> int:
        return self.grid_size * self.grid_size

    @property
    def block_size(self) -> int:
        """Maximum sequence length the model runs on: text, start-of-image, and all image tokens but the last."""
        return self.text_len + self.image_len
