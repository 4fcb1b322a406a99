import torch
from dalle.model.checkpoint import load_checkpoint
from dalle.model.train import TrainSettings, train_vae

from .conftest import TINY_VAE


def _images(count: int = 24) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (count, 3, 16, 16), generator=generator, dtype=torch.uint8)


def _settings(steps: int, amp: str) -> TrainSettings:
    return TrainSettings(steps=steps, batch_size=8, lr=1e-3, warmup_steps=1, checkpoint_every=2, device="cpu", amp=amp)


def test_bf16_vae_codebook_float32(tmp_path):
    out = tmp_path / "vae.safetensors"
    vae = train_vae(_images(), TINY_VAE, _settings(3, "bf16"), out)
    assert vae.codebook_weight.dtype == torch.float32
    assert torch.isfinite(vae.codebook_weight).all()
    loaded = load_checkpoint(out).vae
    codes = torch.randint(0, TINY_VAE.codebook_size, (2, 4, 4))
    assert torch.allclose(loaded.decode(codes), vae.decode(codes), atol=1e-6)


def test_vae_resume_matches_whole_run(tmp_path):
    images = _images()
    whole = train_vae(images, TINY_VAE, _settings(4, "none"), tmp_path / "whole.safetensors")
    train_vae(images, TINY_VAE, _settings(2, "none"), tmp_path / "split.safetensors")
    resumed = train_vae(images, TINY_VAE, _settings(4, "none"), tmp_path / "split.safetensors", resume=True)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name


def test_amp_auto_resolves_by_native_support(tmp_path, monkeypatch, caplog):
    import dalle.model.train as train

    for native, expected in ((False, "none"), (True, "bf16")):
        monkeypatch.setattr(train, "native_bf16", lambda device, native=native: native)
        out = tmp_path / f"vae-{expected}.safetensors"
        train_vae(_images(), TINY_VAE, _settings(2, "auto"), out)
        assert load_checkpoint(out).training["amp"] == expected

    # An explicit bf16 request is kept, with a warning that names the way out.
    monkeypatch.setattr(train, "native_bf16", lambda device: False)
    with caplog.at_level("WARNING", logger="dalle.model.train"):
        assert train.resolve_amp("bf16", torch.device("cpu")) == "bf16"
    assert "use --amp none or --amp auto" in caplog.text


def test_resume_with_other_steps_warns_of_schedule_change(tmp_path, caplog):
    images = _images()
    out = tmp_path / "vae.safetensors"
    train_vae(images, TINY_VAE, _settings(2, "none"), out)
    with caplog.at_level("WARNING", logger="dalle.model.train"):
        train_vae(images, TINY_VAE, _settings(2, "none"), out, resume=True)
        assert [r for r in caplog.records if r.levelname == "WARNING"] == []
        train_vae(images, TINY_VAE, _settings(4, "none"), out, resume=True)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "resuming at step 2 a run started for --steps 2, now 4: the learning-rate schedule changes from here on; "
        "pass --steps 2 to keep it"
    ]
