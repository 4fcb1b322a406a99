import json

import pytest
import torch
from dalle.model.checkpoint import load_checkpoint, save_checkpoint
from dalle.model.config import TransformerConfig, VAEConfig
from dalle.model.errors import CheckpointError, ConfigError
from dalle.model.pipeline import TextToImage
from dalle.model.transformer import DalleTransformer
from dalle.model.vae import DiscreteVAE
from safetensors.torch import save_file

from .conftest import tiny_parts


def test_round_trip_keeps_outputs(tmp_path):
    vae, transformer, tokenizer = tiny_parts(seed=7)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, vae, transformer, tokenizer, training={"steps": 3})
    loaded = load_checkpoint(path)
    assert loaded.training == {"steps": 3}
    assert loaded.transformer.config == transformer.config
    assert loaded.vae.config == vae.config
    text = torch.tensor([tokenizer.encode("orange dinosaur in a suit").ids])
    image = torch.randint(0, 32, (1, transformer.config.image_len))
    with torch.no_grad():
        assert torch.equal(transformer(text, image)[1], loaded.transformer(text, image)[1])
        codes = torch.randint(0, 32, (2, 4, 4))
        assert torch.equal(vae.decode(codes), loaded.vae.decode(codes))
    assert loaded.tokenizer.encode("一个穿着西服的橙色恐龙").ids == tokenizer.encode("一个穿着西服的橙色恐龙").ids


def test_float16_checkpoint_loads_as_float32(tmp_path):
    vae, transformer, tokenizer = tiny_parts(seed=7)
    path = tmp_path / "half.safetensors"
    save_checkpoint(path, vae, transformer, tokenizer, dtype="float16")
    loaded = load_checkpoint(path)
    weight = loaded.transformer.lm_head.weight
    assert weight.dtype == torch.float32
    assert torch.allclose(weight, transformer.lm_head.weight, atol=1e-3)


def test_gumbel_vae_round_trip(tmp_path):
    vae, _, _ = tiny_parts(seed=8, quantizer="gumbel")
    path = tmp_path / "vae.safetensors"
    save_checkpoint(path, vae)
    loaded = load_checkpoint(path)
    assert loaded.transformer is None
    assert loaded.vae.config.quantizer == "gumbel"


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path, tiny_model_path):
    broken = tmp_path / "cut.safetensors"
    broken.write_bytes(tiny_model_path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(broken)


def test_header_size_with_pickle_byte(tmp_path):
    # A 7,296-byte header (0x1c80) starts with 0x80, the first byte of a pickle.
    vae, transformer, tokenizer = tiny_parts(seed=7)
    path = tmp_path / "m.safetensors"
    for pad in range(0, 512, 8):
        save_checkpoint(path, vae, transformer, tokenizer, training={"note": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    assert load_checkpoint(path).training == {"note": "x" * pad}


def test_pickle_file_rejected_without_unpickling(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)


def test_foreign_safetensors_rejected(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a dalle checkpoint"):
        load_checkpoint(path)


def test_vae_only_checkpoint_rejected_for_generation(tmp_path):
    vae, _, _ = tiny_parts()
    path = tmp_path / "vae.safetensors"
    save_checkpoint(path, vae)
    with pytest.raises(CheckpointError, match="holds only a VAE"):
        TextToImage.from_pretrained(path)


def test_mismatched_vae_rejected(tmp_path):
    _, transformer, tokenizer = tiny_parts()
    other_vae = DiscreteVAE(VAEConfig(image_size=32, hidden_dims=(8, 16), codebook_size=64, codebook_dim=8))
    path = tmp_path / "mixed.safetensors"
    save_checkpoint(path, other_vae, transformer, tokenizer)
    with pytest.raises(CheckpointError, match="use the VAE the transformer was trained with"):
        load_checkpoint(path)


def test_config_not_matching_tensors_rejected(tmp_path):
    from safetensors import safe_open

    vae, transformer, tokenizer = tiny_parts()
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, vae, transformer, tokenizer)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    config = json.loads(metadata["transformer_config"])
    config["n_layer"] = 3
    metadata["transformer_config"] = json.dumps(config)
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)


def test_invalid_config_values_named():
    with pytest.raises(ConfigError, match="n_embd=30"):
        TransformerConfig(n_embd=30, n_head=4)
    with pytest.raises(ConfigError, match="image_size=20"):
        VAEConfig(image_size=20)


def test_save_is_atomic_on_failure(tmp_path):
    vae, transformer, _ = tiny_parts()
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, vae)
    before = path.read_bytes()
    bad = DalleTransformer(transformer.config)
    with pytest.raises(ConfigError):
        save_checkpoint(path, vae, bad, None)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
