"""Slow end-to-end tests: real training through the CLI, and the shipped default model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dalle.model import SamplingSettings, TextToImage, default_model_path, load_checkpoint
from dalle.model.data import load_codes
from PIL import Image

from .test_cli import run_cli

pytestmark = pytest.mark.slow

TINY_VAE = [
    "--steps",
    "30",
    "--batch-size",
    "8",
    "--hidden-dims",
    "16,32,32",
    "--codebook-size",
    "64",
    "--image-size",
    "32",
    "--checkpoint-every",
    "15",
    "--device",
    "cpu",
]
TINY_TRANSFORMER = [
    "--steps",
    "30",
    "--batch-size",
    "8",
    "--n-layer",
    "2",
    "--n-head",
    "2",
    "--n-embd",
    "32",
    "--vocab-size",
    "300",
    "--text-len",
    "24",
    "--checkpoint-every",
    "15",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run data -> train vae -> train transformer through the CLI on 32 toy-world images."""
    root = tmp_path_factory.mktemp("e2e")
    steps = [
        ("data", "toyworld", str(root / "toy"), "--count", "32", "--seed", "3", "--image-size", "32"),
        ("train", "vae", str(root / "toy"), "--out", str(root / "vae.safetensors"), *TINY_VAE),
        (
            "train",
            "transformer",
            str(root / "toy"),
            "--vae",
            str(root / "vae.safetensors"),
            "--out",
            str(root / "dalle.safetensors"),
            *TINY_TRANSFORMER,
        ),
    ]
    outputs = [root / "toy", root / "vae.safetensors", root / "dalle.safetensors"]
    for args, output in zip(steps, outputs, strict=True):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{output}\n"
    return root


def test_training_writes_checkpoints_and_samples(trained):
    assert sorted(p.name for p in (trained / "vae-samples").iterdir()) == ["step-000015.png", "step-000030.png"]
    assert sorted(p.name for p in (trained / "dalle-samples").iterdir()) == ["step-000015.png", "step-000030.png"]
    checkpoint = load_checkpoint(trained / "dalle.safetensors")
    assert checkpoint.training["steps"] == 30
    assert checkpoint.transformer is not None
    assert checkpoint.vae.config.image_size == 32


def test_generate_with_trained_model(trained, tmp_path):
    result = run_cli(
        "generate",
        "orange dinosaur in a suit",
        "-n",
        "2",
        "--seed",
        "0",
        "--model",
        str(trained / "dalle.safetensors"),
        "--out-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    paths = result.stdout.splitlines()
    assert len(paths) == 2
    with Image.open(paths[0]) as image:
        assert image.size == (32, 32)


def test_encode_then_train_from_codes(trained, tmp_path):
    codes = tmp_path / "codes.safetensors"
    result = run_cli(
        "encode",
        str(trained / "toy"),
        "--model",
        str(trained / "vae.safetensors"),
        "-o",
        str(codes),
        "--reconstruct",
        str(tmp_path / "recon"),
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(codes)
    loaded = load_codes(codes)
    assert loaded.codes.shape == (32, 4, 4)
    assert len(loaded.captions) == 32
    assert len(list((tmp_path / "recon").glob("*.png"))) == 32
    assert "PSNR" in result.stderr

    result = run_cli(
        "train",
        "transformer",
        str(codes),
        "--vae",
        str(trained / "vae.safetensors"),
        "--out",
        str(tmp_path / "from-codes.safetensors"),
        *TINY_TRANSFORMER,
    )
    assert result.returncode == 0, result.stderr


def test_codes_from_another_vae_rejected(trained, tmp_path):
    codes = tmp_path / "codes.safetensors"
    assert (
        run_cli(
            "encode",
            str(trained / "toy"),
            "--model",
            str(trained / "vae.safetensors"),
            "-o",
            str(codes),
            "--device",
            "cpu",
        ).returncode
        == 0
    )
    other = tmp_path / "other-vae.safetensors"
    assert run_cli("train", "vae", str(trained / "toy"), "--out", str(other), *TINY_VAE, "--seed", "5").returncode == 0
    result = run_cli(
        "train",
        "transformer",
        str(codes),
        "--vae",
        str(other),
        "--out",
        str(tmp_path / "x.safetensors"),
        *TINY_TRANSFORMER,
    )
    assert result.returncode == 2
    assert "different VAE" in result.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_vae_training_resumes(trained, tmp_path):
    out = tmp_path / "vae.safetensors"
    first = [a if a != "30" else "15" for a in TINY_VAE]
    assert run_cli("train", "vae", str(trained / "toy"), "--out", str(out), *first).returncode == 0
    result = run_cli("train", "vae", str(trained / "toy"), "--out", str(out), *TINY_VAE, "--resume")
    assert result.returncode == 0, result.stderr
    assert "resuming VAE training from step 15" in result.stderr
    assert load_checkpoint(out).training["steps"] == 30


def test_shipped_model_loads_and_generates():
    path = default_model_path()
    assert path.is_file(), f"shipped weights missing at {path}; run `make weights`"
    assert path.stat().st_size <= 50 * 1024 * 1024
    pipe = TextToImage.from_pretrained()
    images = pipe.generate(
        ["orange dinosaur in a suit", "一个穿着西服的橙色恐龙"], seed=0, settings=SamplingSettings(guidance_scale=3.0)
    )
    assert [image.size for image in images] == [(pipe.image_size, pipe.image_size)] * 2
    assert pipe.image_size >= 64


def test_shipped_model_through_cli(tmp_path):
    result = run_cli("generate", "orange dinosaur in a suit", "-n", "1", "--seed", "0", "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "00000-0-orange-dinosaur-in-a-suit.png")


def test_shipped_model_same_pixels_any_batch_size():
    # The VAE decoder's CPU convolutions round differently for other batch sizes. Batched
    # decoding once moved single pixels by one level, so --from did not reproduce images.
    pipe = TextToImage.from_pretrained()
    prompts = ["orange dinosaur in a suit"] * 8
    together = pipe.generate(prompts, seed=0, batch_size=8)
    alone = [pipe.generate(prompts[:1], seed=i, batch_size=1)[0] for i in range(8)]

    assert [image.tobytes() for image in together] == [image.tobytes() for image in alone]


def test_decode_ignores_other_grids_in_call():
    # decode() pads every call to DECODE_BATCH grids. The pixels of one grid must not depend
    # on the other grids in its call or on its place among them.
    pipe = TextToImage.from_pretrained()
    vocab = pipe.vae.config.codebook_size
    tokens = torch.randint(0, vocab, (13, pipe.vae.config.grid_size**2), generator=torch.Generator().manual_seed(0))
    alone = pipe.decode(tokens[:1])[0].tobytes()
    for place in (0, 3, 7, 12):
        mixed = tokens[1:].clone()
        mixed = torch.cat([mixed[:place], tokens[:1], mixed[place:]])
        assert pipe.decode(mixed)[place].tobytes() == alone
