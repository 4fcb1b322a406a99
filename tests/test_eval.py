"""`dalle eval`: the prompt set, scoring, and the command end to end on a tiny random model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from dalle.cli.main import main
from dalle.model.errors import ConfigError
from dalle.model.eval_prompts import MIN_PROMPTS, build_prompt_set
from dalle.model.evaluate import GROUPS, EvalSettings, run_evaluation, score_samples
from dalle.model.judge import ATTRIBUTES, Judge, JudgeConfig, save_judge
from dalle.model.pipeline import TextToImage
from dalle.model.toyworld import BACKGROUNDS, COLOURS, HELD_OUT, OUTFITS, POSITIONS, SIZES, SUBJECTS

FAST = ["--judge-renders", "200", "--vae-renders", "16", "--diversity-images", "4"]


@pytest.mark.parametrize("seed", range(20))
def test_prompt_set_covers_every_value(seed):
    prompts = build_prompt_set(MIN_PROMPTS, seed)
    seen = [p for p in prompts if not p.held_out]
    assert {p.expected["subject"] for p in seen} == set(SUBJECTS)
    assert {p.expected["colour"] for p in seen} == set(COLOURS)
    assert {p.expected.get("outfit", "none") for p in prompts} == set(OUTFITS)
    for name, values in (("background", BACKGROUNDS), ("position", POSITIONS), ("size", SIZES)):
        assert {p.expected[name] for p in prompts if name in p.expected} == set(values), name


def test_prompt_set_held_out_in_both_languages():
    prompts = build_prompt_set(60, 0)
    held_out = {(p.expected["subject"], p.expected["colour"], p.expected["outfit"], p.language) for p in prompts[:12]}
    assert held_out == {(*combination, language) for combination in HELD_OUT for language in ("en", "zh")}
    assert all(p.held_out for p in prompts[:12])
    for prompt in prompts[12:]:
        combination = (prompt.expected["subject"], prompt.expected["colour"], prompt.expected.get("outfit", "none"))
        assert not prompt.held_out
        assert combination not in HELD_OUT


def test_prompt_set_fixed_by_seed():
    assert build_prompt_set(40, 3) == build_prompt_set(40, 3)
    assert build_prompt_set(40, 3) != build_prompt_set(40, 4)


def test_prompt_text_states_expected_attributes():
    prompt = next(p for p in build_prompt_set(60, 0) if p.language == "zh" and "size" in p.expected)
    size_word = {"small": "小小的", "large": "大大的"}[prompt.expected["size"]]
    position_word = {"left": "左边", "center": "中间", "right": "右边"}[prompt.expected["position"]]
    assert size_word in prompt.text
    assert position_word in prompt.text
    assert set(prompt.expected) <= set(ATTRIBUTES)


def test_prompt_set_rejects_too_few():
    with pytest.raises(ConfigError, match=f"pass --prompts {MIN_PROMPTS} or more"):
        build_prompt_set(MIN_PROMPTS - 1)


def _sample(held_out: bool, expected: dict[str, str], predicted: dict[str, str]) -> dict[str, object]:
    groups = ["all", "held_out" if held_out else "seen", "english"]
    correct = {name: predicted[name] == value for name, value in expected.items()}
    return {"prompt": str(expected), "groups": groups, "expected": expected, "predicted": predicted, "correct": correct}


def test_score_samples_counts_stated_trusted_heads():
    guess = {"subject": "cat", "colour": "red", "outfit": "hat", "background": "room", "position": "left"}
    guess["size"] = "small"
    samples = [
        _sample(False, {"subject": "cat", "colour": "red"}, guess),
        _sample(False, {"subject": "cat", "colour": "blue", "size": "small"}, guess),
        _sample(True, {"subject": "dog", "colour": "red", "outfit": "hat"}, guess),
    ]
    trusted = dict.fromkeys(ATTRIBUTES, True)
    trusted["subject"] = False
    scores = score_samples(samples, trusted)
    assert set(scores) == set(GROUPS)
    assert scores["all"].images == 3
    assert scores["all"].accuracy["subject"] is None  # head not trusted
    assert scores["all"].accuracy["colour"] == pytest.approx(2 / 3)
    assert scores["all"].accuracy["background"] is None  # no prompt states it
    assert scores["all"].scored["size"] == 1
    assert scores["all"].all_correct == pytest.approx(2 / 3)  # the wrong subject of sample 3 is not counted
    assert scores["held_out"].all_correct == 1.0
    assert scores["chinese"].images == 0
    assert scores["chinese"].all_correct is None


def test_untrained_judge_counts_nothing(tiny_model_path, tmp_path):
    judge = Judge(JudgeConfig(image_size=32, stem_width=4, widths=(8,), hidden=16)).eval()
    settings = EvalSettings(prompts=MIN_PROMPTS, images_per_prompt=1, judge_renders=100, vae_renders=8)
    settings.diversity_images = 3
    result = run_evaluation(TextToImage.from_pretrained(tiny_model_path), judge, settings)
    assert not any(result.judge_trusted.values())
    assert all(value is None for value in result.groups["all"].accuracy.values())
    assert result.groups["all"].all_correct is None
    assert len(result.samples) == MIN_PROMPTS


def _check_schema(document: dict, prompts: int, images_per_prompt: int) -> None:
    assert document["format"] == "dalle-eval"
    assert document["version"] == 1
    assert document["settings"]["prompts"] == prompts
    assert document["settings"]["images_per_prompt"] == images_per_prompt
    assert set(document["judge_accuracy"]) == set(ATTRIBUTES)
    assert all(0.0 <= value <= 1.0 for value in document["judge_accuracy"].values())
    assert set(document["judge_trusted"]) == set(ATTRIBUTES)
    assert set(document["groups"]) == set(GROUPS)
    for name, group in document["groups"].items():
        assert set(group) == {"prompts", "images", "accuracy", "scored", "all_correct"}, name
        assert set(group["accuracy"]) == set(ATTRIBUTES)
        for attribute, value in group["accuracy"].items():
            assert value is None or 0.0 <= value <= 1.0, (name, attribute)
            assert group["scored"][attribute] <= group["images"]
    groups = document["groups"]
    assert groups["all"]["images"] == prompts * images_per_prompt
    assert groups["seen"]["images"] + groups["held_out"]["images"] == groups["all"]["images"]
    assert groups["english"]["images"] + groups["chinese"]["images"] == groups["all"]["images"]
    assert groups["held_out"]["prompts"] == 2 * len(HELD_OUT)
    assert document["vae_psnr_db"] > 0
    assert set(document["judge_accuracy_on_reconstructions"]) == set(ATTRIBUTES)
    diversity = document["diversity"]
    assert 0.0 < diversity["distinct_token_grids"] <= 1.0
    assert 0.0 <= diversity["mean_pairwise_distance"] <= 1.0
    assert len(document["samples"]) == prompts * images_per_prompt
    sample = document["samples"][0]
    assert set(sample) == {"prompt", "language", "held_out", "seed", "groups", "expected", "predicted", "correct"}
    assert set(sample["predicted"]) == set(ATTRIBUTES)
    assert document["seconds"] > 0


def test_eval_cli_end_to_end_json(tiny_model_path):
    env = {**os.environ, "NO_COLOR": "1"}
    # The default 1000 judge renders, so the accuracy check of the shipped judge is not left to a small sample.
    args = ["--model", str(tiny_model_path), "--prompts", "24", "--images-per-prompt", "2", "--json"]
    args += ["--vae-renders", "16", "--diversity-images", "4"]
    result = subprocess.run(
        [sys.executable, "-m", "dalle.cli", "eval", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    _check_schema(document, prompts=24, images_per_prompt=2)
    assert document["model"] == str(tiny_model_path)
    assert document["judge"].endswith("judge.safetensors")
    assert all(document["judge_trusted"].values())  # the shipped judge passes its check
    assert "Prompt adherence" in result.stderr
    assert "VAE reconstruction PSNR" in result.stderr


def test_eval_same_seed_same_result(tiny_model_path, capsys):
    args = ["eval", "--model", str(tiny_model_path), "--prompts", "22", "--images-per-prompt", "1", "--json", *FAST]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    first.pop("seconds")
    second.pop("seconds")
    assert first == second


def test_eval_without_json_prints_nothing_on_stdout(tiny_model_path, capsys):
    assert main(["eval", "--model", str(tiny_model_path), "--prompts", "22", "--images-per-prompt", "1", *FAST]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "all correct" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompts", "5"], "invalid prompt count 5"),
        (["--images-per-prompt", "0"], "--images-per-prompt"),
        (["--temperature", "-1"], "invalid --temperature=-1.0"),
        (["--model", "absent.safetensors"], "model file not found: absent.safetensors"),
        (["--judge", "absent.safetensors"], "judge file not found: absent.safetensors"),
        (["--device", "tpu"], "device 'tpu'"),
    ],
)
def test_eval_bad_input(tiny_model_path, capsys, args, message):
    status = main(["eval", "--model", str(tiny_model_path), *args])
    captured = capsys.readouterr()
    assert status == 2
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""


def test_eval_rejects_model_as_judge(tiny_model_path, capsys):
    status = main(["eval", "--model", str(tiny_model_path), "--judge", str(tiny_model_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert "not a dalle judge file" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_rejects_vae_only_model(tmp_path, capsys):
    from dalle.model.checkpoint import save_checkpoint

    from tests.conftest import tiny_parts

    vae, _, _ = tiny_parts()
    path = tmp_path / "vae.safetensors"
    save_checkpoint(path, vae)
    judge_path = tmp_path / "judge.safetensors"
    save_judge(judge_path, Judge(JudgeConfig()))
    status = main(["eval", "--model", str(path), "--judge", str(judge_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert "holds only a VAE" in err
