"""Decoder training: the decoder learns, tokens and the transformer stay as they were."""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dalle.model.checkpoint import load_checkpoint, save_checkpoint
from dalle.model.config import VAEConfig
from dalle.model.data import to_model_range
from dalle.model.errors import CheckpointError, ConfigError
from dalle.model.finetune import NewDecoder, finetune_decoder
from dalle.model.toyworld import random_scene, render, write_dataset
from dalle.model.train import TrainProgress, TrainSettings, train_vae
from dalle.model.vae import Decoder

from .conftest import TINY_VAE, tiny_parts


def _images(count: int = 16) -> torch.Tensor:
    """Toy-world renders (uint8, N x 3 x 16 x 16): unlike noise, a decoder can learn to draw them."""
    rng = random.Random(1)
    arrays = [np.asarray(render(random_scene(rng), 16, seed=i)) for i in range(count)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _settings(steps: int) -> TrainSettings:
    return TrainSettings(steps=steps, batch_size=8, lr=1e-2, warmup_steps=1, checkpoint_every=10, device="cpu")


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dalle.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


def _save_tiny_vae(tmp_path) -> Path:
    """Save a tiny random VAE as `vae.safetensors` under tmp_path and return its path."""
    vae, _, _ = tiny_parts()
    source = tmp_path / "vae.safetensors"
    save_checkpoint(source, vae)
    return source


def _write_tiny_data(tmp_path) -> Path:
    """Write four 16-pixel toy-world images with captions to tmp_path/data and return the folder."""
    data = tmp_path / "data"
    write_dataset(data, 4, seed=0, image_size=16)
    return data


def _reconstruction_mse(vae: torch.nn.Module, images: torch.Tensor) -> float:
    batch = to_model_range(images)
    return F.mse_loss(vae.decode(vae.encode(batch)), batch).item()


def test_finetune_lowers_error_keeps_tokens(tmp_path):
    vae, transformer, tokenizer = tiny_parts()
    source = tmp_path / "model.safetensors"
    save_checkpoint(source, vae, transformer, tokenizer, training={"kind": "transformer", "steps": 7})
    images = _images()
    before = load_checkpoint(source)
    codes_before = before.vae.encode(to_model_range(images))
    error_before = _reconstruction_mse(before.vae, images)

    out = tmp_path / "sharp.safetensors"
    finetune_decoder(images, load_checkpoint(source), _settings(60), out)

    after = load_checkpoint(out)
    assert torch.equal(after.vae.encode(to_model_range(images)), codes_before)
    assert _reconstruction_mse(after.vae, images) < 0.9 * error_before
    for name, tensor in before.transformer.state_dict().items():
        assert torch.equal(after.transformer.state_dict()[name], tensor), name
    assert after.tokenizer.tokenizer_json == before.tokenizer.tokenizer_json
    assert after.training["steps"] == 7
    assert after.training["decoder_finetune"]["steps"] == 60
    assert (tmp_path / "sharp-samples" / "step-000060.png").exists()


class _Interrupt(Exception):
    pass


def _stop_at(step: int):
    def progress(p: TrainProgress) -> None:
        if p.step == step:
            raise _Interrupt

    return progress


def test_finetune_resume_matches_whole_run(tmp_path):
    source = _save_tiny_vae(tmp_path)
    images = _images()
    whole = finetune_decoder(images, load_checkpoint(source), _settings(20), tmp_path / "whole.safetensors")

    # Stop after step 13: the last saved state is step 10, so resuming repeats steps 11 to 13.
    split = tmp_path / "split.safetensors"
    with pytest.raises(_Interrupt):
        finetune_decoder(images, load_checkpoint(source), _settings(20), split, progress=_stop_at(13))
    resumed = finetune_decoder(images, load_checkpoint(source), _settings(20), split, resume=True)
    for (name, a), b in zip(whole.decoder.state_dict().items(), resumed.decoder.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name


def test_finetune_keeps_checkpoint_dtype(tmp_path):
    vae, transformer, tokenizer = tiny_parts()
    source = tmp_path / "half.safetensors"
    save_checkpoint(source, vae, transformer, tokenizer, dtype="float16")
    checkpoint = load_checkpoint(source)
    assert checkpoint.dtype == "float16"
    out = tmp_path / "out.safetensors"
    finetune_decoder(_images(), checkpoint, _settings(2), out, dtype=checkpoint.dtype)
    assert load_checkpoint(out).dtype == "float16"


def test_cli_decoder_writes_checkpoint(tmp_path):
    data = tmp_path / "data"
    write_dataset(data, 12, seed=0, image_size=16)
    vae, transformer, tokenizer = tiny_parts()
    source = tmp_path / "model.safetensors"
    save_checkpoint(source, vae, transformer, tokenizer, dtype="float16")
    out = tmp_path / "sharp.safetensors"
    args = ["train", "decoder", str(data), "--model", str(source), "--out", str(out), "--steps", "3"]
    result = _run_cli(*args, "--batch-size", "4", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out}\n"
    assert load_checkpoint(out).dtype == "float16"


def test_cli_decoder_bad_dtype_exit_2(tmp_path):
    source = _save_tiny_vae(tmp_path)
    args = ["train", "decoder", str(tmp_path), "--model", str(source), "--out", str(tmp_path / "x.safetensors")]
    result = _run_cli(*args, "--dtype", "int8")
    assert result.returncode == 2
    assert "invalid --dtype 'int8'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_resume_rejects_other_command_state(tmp_path):
    vae, transformer, tokenizer = tiny_parts()
    source = tmp_path / "model.safetensors"
    save_checkpoint(source, vae, transformer, tokenizer)
    out = tmp_path / "vae.safetensors"
    train_vae(_images(), TINY_VAE, _settings(2), out)
    with pytest.raises(CheckpointError, match="training state of `dalle train vae`, not `dalle train decoder`"):
        finetune_decoder(_images(), load_checkpoint(source), _settings(4), out, resume=True)


def test_resume_rejects_other_base_model(tmp_path):
    vae, transformer, tokenizer = tiny_parts()
    full = tmp_path / "full.safetensors"
    save_checkpoint(full, vae, transformer, tokenizer)
    vae_only = tmp_path / "vae.safetensors"
    save_checkpoint(vae_only, vae)
    out = tmp_path / "out.safetensors"
    finetune_decoder(_images(), load_checkpoint(full), _settings(10), out)
    with pytest.raises(CheckpointError, match=f"saved while training on --model {full}, which differs"):
        finetune_decoder(_images(), load_checkpoint(vae_only), _settings(20), out, resume=True)


def test_cli_out_folder_exit_2(tmp_path):
    source = _save_tiny_vae(tmp_path)
    data = _write_tiny_data(tmp_path)
    folder = tmp_path / "existing"
    folder.mkdir()
    args = ["train", "decoder", str(data), "--model", str(source), "--out", str(folder)]
    result = _run_cli(*args)
    assert result.returncode == 2
    assert f"--out {folder} is a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_out_under_file_exit_2(tmp_path):
    source = _save_tiny_vae(tmp_path)
    data = _write_tiny_data(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    args = ["train", "decoder", str(data), "--model", str(source), "--out", str(notes / "x.safetensors")]
    result = _run_cli(*args)
    assert result.returncode == 2
    assert f"lies under {notes}, which is a file" in result.stderr
    assert notes.read_text() == "hi"


def test_new_decoder_learns_keeps_tokens(tmp_path):
    vae, transformer, tokenizer = tiny_parts()
    source = tmp_path / "model.safetensors"
    save_checkpoint(source, vae, transformer, tokenizer)
    images = _images()
    before = load_checkpoint(source)
    codes_before = before.vae.encode(to_model_range(images))

    # The error of an untrained decoder of the new shape, on the same encoder and codebook.
    untrained = load_checkpoint(source).vae
    untrained.decoder = Decoder(replace(TINY_VAE, decoder_dims=(24, 12), decoder_res_blocks=2))
    error_untrained = _reconstruction_mse(untrained.eval(), images)

    out = tmp_path / "big.safetensors"
    finetune_decoder(images, load_checkpoint(source), _settings(200), out, new_decoder=NewDecoder((24, 12), 2))

    after = load_checkpoint(out)
    assert after.vae.config.decoder_dims == (24, 12)
    assert after.vae.config.decoder_res_blocks == 2
    assert after.vae.decoder.net[0].out_channels == 24
    assert torch.equal(after.vae.encode(to_model_range(images)), codes_before)
    assert _reconstruction_mse(after.vae, images) < 0.85 * error_untrained
    for name, tensor in before.transformer.state_dict().items():
        assert torch.equal(after.transformer.state_dict()[name], tensor), name
    assert after.training["decoder_finetune"]["new_decoder"] is True


def test_resume_rejects_other_new_decoder_shape(tmp_path):
    source = _save_tiny_vae(tmp_path)
    out = tmp_path / "out.safetensors"
    finetune_decoder(_images(), load_checkpoint(source), _settings(10), out, new_decoder=NewDecoder((24, 12), 1))
    with pytest.raises(
        CheckpointError,
        match="decoder of widths 24,12 with 1 residual block per level, and this "
        "run requests widths 32,12 with 1 residual block per level; pass the same --new-decoder",
    ):
        finetune_decoder(
            _images(), load_checkpoint(source), _settings(20), out, resume=True, new_decoder=NewDecoder((32, 12), 1)
        )
    with pytest.raises(CheckpointError, match=r"requests widths 16,8 with 1 residual block per level \(the decoder of"):
        finetune_decoder(_images(), load_checkpoint(source), _settings(20), out, resume=True)


def test_finetune_keeps_new_decoder_shape(tmp_path):
    source = _save_tiny_vae(tmp_path)
    big = tmp_path / "big.safetensors"
    finetune_decoder(_images(), load_checkpoint(source), _settings(10), big, new_decoder=NewDecoder((24, 12), 1))
    tuned = tmp_path / "tuned.safetensors"
    finetune_decoder(_images(), load_checkpoint(big), _settings(5), tuned)
    checkpoint = load_checkpoint(tuned)
    assert checkpoint.vae.config.decoder_dims == (24, 12)
    record = checkpoint.training["decoder_finetune"]
    assert record["steps"] == 5
    assert record["new_decoder"] is False
    assert record["earlier"]["steps"] == 10
    assert record["earlier"]["new_decoder"] is True


def test_resume_past_last_step_logs(tmp_path, caplog):
    source = _save_tiny_vae(tmp_path)
    out = tmp_path / "out.safetensors"
    finetune_decoder(_images(), load_checkpoint(source), _settings(10), out)
    with caplog.at_level("INFO", logger="dalle.model.train"):
        finetune_decoder(_images(), load_checkpoint(source), _settings(5), out, resume=True)
    state = tmp_path / "out.state.safetensors"
    messages = [r.getMessage() for r in caplog.records if r.name == "dalle.model.train"]
    assert messages == [f"{state} is at step 10, which reaches --steps 5, so there is nothing to train; raise --steps"]


def test_config_without_decoder_fields_mirrors_encoder():
    # Checkpoints written before decoder_dims existed keep loading, with the mirrored decoder they were trained with.
    old = VAEConfig.from_json('{"hidden_dims": [8, 16], "image_size": 16, "num_res_blocks": 2}')
    assert old.decoder_widths == (16, 8)
    assert old.decoder_blocks == 2


def test_config_rejects_decoder_dims_of_other_depth():
    with pytest.raises(ConfigError, match=r"invalid decoder_dims=\(32,\): needs 2 positive widths"):
        VAEConfig(image_size=16, hidden_dims=(8, 16), decoder_dims=(32,))


@pytest.mark.parametrize(
    ("value", "message"),
    [("64", "has 2 encoder levels, so give 2 widths"), ("64,x", "expected positive integers like 384,192,64")],
)
def test_cli_new_decoder_bad_widths_exit_2(tmp_path, value, message):
    source = _save_tiny_vae(tmp_path)
    data = _write_tiny_data(tmp_path)
    out = tmp_path / "x.safetensors"
    result = _run_cli("train", "decoder", str(data), "--model", str(source), "--out", str(out), "--new-decoder", value)
    assert result.returncode == 2
    assert f"invalid --new-decoder {value!r}" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--new-decoder-res-blocks", "3"], "--new-decoder-res-blocks needs --new-decoder WIDTHS"),
        (["--new-decoder", "32,16", "--new-decoder-res-blocks", "-1"], "invalid --new-decoder-res-blocks -1: use 0"),
    ],
)
def test_cli_new_decoder_res_blocks_misuse_exit_2(tmp_path, extra, message):
    source = _save_tiny_vae(tmp_path)
    out = tmp_path / "x.safetensors"
    result = _run_cli("train", "decoder", str(tmp_path), "--model", str(source), "--out", str(out), *extra)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
