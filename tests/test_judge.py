"""The judge: accuracy of the shipped file on fresh renders, training, and strict loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from dalle.cli.main import main
from dalle.model.checkpoint import save_checkpoint
from dalle.model.errors import CheckpointError
from dalle.model.judge import (
    ATTRIBUTES,
    REQUIRED_ACCURACY,
    Judge,
    JudgeConfig,
    default_judge_path,
    load_judge,
    save_judge,
)
from dalle.model.judge_training import judge_accuracy, render_batch, train_judge
from dalle.model.train import TrainSettings
from safetensors import safe_open
from safetensors.torch import save_file

TINY_JUDGE = JudgeConfig(image_size=32, stem_width=8, widths=(16, 16), hidden=64)


def test_shipped_judge_accurate_on_fresh_renders():
    judge, training = load_judge()
    # Seed 4242 is not the seed of the accuracy check that `dalle train judge` ran.
    accuracy = judge_accuracy(judge, count=600, seed=4242)
    assert set(accuracy) == set(ATTRIBUTES)
    for name, value in accuracy.items():
        assert value >= REQUIRED_ACCURACY, f"{name}: {value:.3f}"
    assert training["kind"] == "judge"


def test_shipped_judge_small_float16():
    path = default_judge_path()
    assert path.stat().st_size < 2 * 1024 * 1024
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        dtypes = {handle.get_tensor(key).dtype for key in handle.keys()}  # noqa: SIM118
    assert metadata["format"] == "dalle-judge"
    assert metadata["dtype"] == "float16"
    assert torch.float16 in dtypes
    assert all(value >= REQUIRED_ACCURACY for value in json.loads(metadata["training"])["accuracy"].values())


def test_render_batch_labels_match_heads():
    import random

    images, labels = render_batch(random.Random(0), 5, 32)
    assert images.shape == (5, 3, 32, 32)
    assert images.min() >= -1.0
    assert images.max() <= 1.0
    assert set(labels) == set(ATTRIBUTES)
    assert all(values.shape == (5,) for values in labels.values())


def test_train_judge_same_seed_same_weights():
    settings = TrainSettings(steps=3, batch_size=8, lr=1e-3, warmup_steps=1, seed=5)
    first = train_judge(settings, TINY_JUDGE).state_dict()
    second = train_judge(settings, TINY_JUDGE).state_dict()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


def test_train_judge_learns_background():
    # The background is the easiest head (five distinct colour fields): 40 small steps beat chance (0.2) clearly.
    losses: list[float] = []
    settings = TrainSettings(steps=40, batch_size=16, lr=1e-2, warmup_steps=4, seed=0)
    judge = train_judge(settings, TINY_JUDGE, progress=lambda p: losses.append(p.loss))
    assert len(losses) == 40
    assert judge_accuracy(judge, count=200, seed=1)["background"] > 0.8


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    judge = Judge(TINY_JUDGE).eval()
    path = tmp_path / "judge.safetensors"
    save_judge(path, judge, training={"kind": "judge", "steps": 0}, dtype="float32")
    loaded, training = load_judge(path)
    assert loaded.config == TINY_JUDGE
    assert training == {"kind": "judge", "steps": 0}
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    expected = judge.predict(images)
    actual = loaded.predict(images)
    for name in ATTRIBUTES:
        assert torch.equal(expected[name], actual[name]), name


def _saved_judge(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, torch.Tensor]]:
    path = tmp_path / "judge.safetensors"
    save_judge(path, Judge(TINY_JUDGE), dtype="float16")
    with safe_open(str(path), framework="pt") as handle:
        return path, dict(handle.metadata()), {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


def test_load_rejects_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"judge file not found.*dalle train judge"):
        load_judge(tmp_path / "absent.safetensors")


def test_load_rejects_pickle(tmp_path):
    path = tmp_path / "judge.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_judge(path)


def test_load_rejects_model_checkpoint(tmp_path):
    from tests.conftest import tiny_parts

    vae, transformer, tokenizer = tiny_parts()
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, vae, transformer, tokenizer)
    with pytest.raises(CheckpointError, match="not a dalle judge file"):
        load_judge(path)


def test_load_rejects_other_labels(tmp_path):
    path, metadata, tensors = _saved_judge(tmp_path)
    labels = json.loads(metadata["labels"])
    labels["colour"] = labels["colour"][:-1]
    save_file(tensors, str(path), metadata={**metadata, "labels": json.dumps(labels)})
    with pytest.raises(CheckpointError, match="other toy-world labels"):
        load_judge(path)


def test_load_rejects_config_weight_mismatch(tmp_path):
    path, metadata, tensors = _saved_judge(tmp_path)
    config = json.loads(metadata["judge_config"])
    config["hidden"] = 32
    save_file(tensors, str(path), metadata={**metadata, "judge_config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="shape"):
        load_judge(path)


def test_load_rejects_missing_tensor(tmp_path):
    path, metadata, tensors = _saved_judge(tmp_path)
    del tensors["heads.size.weight"]
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match=r"missing \['heads.size.weight'\]"):
        load_judge(path)


def test_load_rejects_dtype_mismatch(tmp_path):
    path, metadata, tensors = _saved_judge(tmp_path)
    save_file(tensors, str(path), metadata={**metadata, "dtype": "float32"})
    with pytest.raises(CheckpointError, match="metadata says float32"):
        load_judge(path)


def test_cli_train_judge_writes_file(tmp_path, capsys):
    out = tmp_path / "judges" / "judge.safetensors"
    status = main(["train", "judge", str(out), "--steps", "2", "--batch-size", "4", "--check-renders", "8"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.strip() == str(out)
    _, training = load_judge(out)
    assert training["steps"] == 2
    assert set(training["accuracy"]) == set(ATTRIBUTES)
    assert "judge accuracy on 8 fresh renders: subject" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dtype", "bfloat16"], "invalid --dtype 'bfloat16'"),
        (["--lr", "0"], "invalid lr=0.0"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_cli_train_judge_bad_input(tmp_path, capsys, args, message):
    out = tmp_path / "judge.safetensors"
    status = main(["train", "judge", str(out), *args])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
