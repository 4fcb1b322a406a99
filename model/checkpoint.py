"""One-file checkpoints in safetensors format, validated strictly on load.

Layout of a checkpoint:
- tensors `vae.*` (always) and `transformer.*` (once a transformer is trained);
- string metadata: `format`, `format_version`, `dtype`, `vae_config` and
  `transformer_config` (dataclasses as JSON), `tokenizer` (tokenizers JSON),
  `vocabulary` (JSON list of words seen in training captions) and `training`
  (JSON facts about how the weights were made).

Pickle files are never opened: safetensors holds only tensors and strings.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import TransformerConfig, VAEConfig
from .errors import CheckpointError, ConfigError
from .files import write_atomic
from .tokenizer import CaptionTokenizer
from .transformer import DalleTransformer
from .vae import DiscreteVAE

logger = logging.getLogger(__name__)

FORMAT = "dalle-checkpoint"
FORMAT_VERSION = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Checkpoint:
    """A loaded checkpoint: the VAE, plus the transformer and tokenizer when present."""

    path: Path | None
    vae: DiscreteVAE
    transformer: DalleTransformer | None = None
    tokenizer: CaptionTokenizer | None = None
    training: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"  # tensor type in the file; loading always gives float32 modules


def save_checkpoint(
    path: str | os.PathLike[str],
    vae: DiscreteVAE,
    transformer: DalleTransformer | None = None,
    tokenizer: CaptionTokenizer | None = None,
    training: dict[str, Any] | None = None,
    dtype: str = "float32",
) -> None:
    """Write a checkpoint atomically: a crash mid-write leaves any older file intact."""
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ConfigError(f"invalid dtype={dtype!r}: must be one of {sorted(DTYPES)}")
    if (transformer is None) != (tokenizer is None):
        raise ConfigError("a transformer must be saved together with its tokenizer")

    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("vae", vae), ("transformer", transformer)):
        if module is None:
            continue
        for name, tensor in module.state_dict().items():
            tensors[f"{prefix}.{name}"] = tensor.detach().to("cpu", DTYPES[dtype]).contiguous()

    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "dtype": dtype,
        "vae_config": vae.config.to_json(),
        "training": json.dumps(training or {}, sort_keys=True, ensure_ascii=False),
    }
    if transformer is not None and tokenizer is not None:
        metadata["transformer_config"] = transformer.config.to_json()
        metadata["tokenizer"] = tokenizer.tokenizer_json
        metadata["vocabulary"] = json.dumps(sorted(tokenizer.vocabulary), ensure_ascii=False)

    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    logger.info("saved checkpoint %s (%d tensors, %s)", path, len(tensors), dtype)


def _check_not_pickle(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(9)
    # A safetensors file starts with the u64 size of its JSON header, then "{". That size
    # can begin with byte 0x80, like a pickle, so the "{" decides first.
    looks_safetensors = head[8:9] == b"{"
    if not looks_safetensors and (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(
            f"{path} is a pickle or torch.save file; dalle loads only .safetensors checkpoints, "
            "because unpickling can run arbitrary code. Convert it with safetensors.torch.save_file"
        )
    if len(head) < 8:
        raise CheckpointError(f"{path} is too short to be a safetensors file ({len(head)} bytes); re-download it")


def _load_state(
    prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path, dtype: torch.dtype
) -> None:
    """Copy tensors `prefix.*` into `module`, rejecting any missing, extra or misshapen tensor."""
    expected = module.state_dict()
    found = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: {prefix} tensors do not match its config (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}); the file was written by another model layout, so retrain or re-export it"
        )
    for name, tensor in found.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{path}: tensor {prefix}.{name} has shape {tuple(tensor.shape)}, config expects "
                f"{tuple(expected[name].shape)}; the config in the metadata does not match the weights"
            )
        if tensor.dtype != dtype:
            raise CheckpointError(
                f"{path}: tensor {prefix}.{name} is {tensor.dtype}, metadata says {dtype}; the file is inconsistent"
            )
    module.load_state_dict({k: v.float() for k, v in found.items()}, strict=True)


def load_checkpoint(path: str | os.PathLike[str], require_transformer: bool = False) -> Checkpoint:
    """Load and validate a checkpoint onto the CPU in float32, whatever device or dtype saved it."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model file not found: {path}; pass the path of a .safetensors checkpoint")
    if path.is_dir():
        raise CheckpointError(f"model path {path} is a folder; pass the .safetensors file inside it")
    _check_not_pickle(path)

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a valid safetensors file ({exc}); pass a checkpoint written by `dalle train`, "
            "or download or train it again if it was truncated"
        ) from exc

    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a dalle checkpoint (format={metadata.get('format')!r}); "
            "pass a file written by `dalle train`"
        )
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, this dalle reads version {FORMAT_VERSION}; "
            "use a matching dalle release"
        )
    dtype_name = metadata.get("dtype", "")
    if dtype_name not in DTYPES:
        raise CheckpointError(f"{path} has invalid dtype {dtype_name!r} in its metadata; re-save the checkpoint")
    dtype = DTYPES[dtype_name]

    try:
        vae_config = VAEConfig.from_json(metadata["vae_config"])
        training = json.loads(metadata.get("training", "{}"))
    except (KeyError, ConfigError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has an invalid VAE config in its metadata ({exc}); re-save it") from exc
    vae = DiscreteVAE(vae_config)
    _load_state("vae", vae, tensors, path, dtype)
    vae.eval()
    checkpoint = Checkpoint(path=path, vae=vae, training=training, dtype=dtype_name)

    if "transformer_config" not in metadata:
        if require_transformer:
            raise CheckpointError(
                f"{path} holds only a VAE; pass a checkpoint from `dalle train transformer`, which adds the transformer"
            )
        return checkpoint

    try:
        config = TransformerConfig.from_json(metadata["transformer_config"])
        vocabulary = json.loads(metadata.get("vocabulary", "[]"))
        tokenizer = CaptionTokenizer(metadata["tokenizer"], config.text_len, vocabulary)
    except Exception as exc:  # the tokenizers library raises plain Exception for a malformed tokenizer
        raise CheckpointError(f"{path} has an invalid transformer config or tokenizer ({exc}); re-save it") from exc
    check_compatible(vae_config, config, path)
    if tokenizer.vocab_size != config.text_vocab_size:
        raise CheckpointError(
            f"{path}: tokenizer has {tokenizer.vocab_size} tokens, transformer expects {config.text_vocab_size}; "
            "the tokenizer and weights come from different runs"
        )
    transformer = DalleTransformer(config)
    _load_state("transformer", transformer, tensors, path, dtype)
    transformer.eval()
    checkpoint.transformer = transformer
    checkpoint.tokenizer = tokenizer
    return checkpoint


def check_compatible(vae_config: VAEConfig, config: TransformerConfig, source: object) -> None:
    """Reject a transformer whose image vocabulary or grid differs from the VAE's."""
    if config.image_vocab_size != vae_config.codebook_size or config.grid_size != vae_config.grid_size:
        raise CheckpointError(
            f"{source}: transformer expects {config.image_vocab_size} codes on a {config.grid_size}x"
            f"{config.grid_size} grid but the VAE has {vae_config.codebook_size} codes on a "
            f"{vae_config.grid_size}x{vae_config.grid_size} grid; use the VAE the transformer was trained with"
        )
