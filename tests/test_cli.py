"""CLI behaviour through Typer's runner and as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dalle.cli.main import app
from dalle.cli.naming import next_index, slugify
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()
DALLE = [sys.executable, "-m", "dalle.cli"]


def run_cli(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [*DALLE, *args], capture_output=True, text=True, cwd=cwd, input=stdin, env=env, timeout=300, check=False
    )


def test_generate_runner_prints_only_paths(tiny_model_path, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "generate",
            "orange dinosaur in a suit",
            "-n",
            "2",
            "--seed",
            "4",
            "--model",
            str(tiny_model_path),
            "--out-dir",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    paths = result.stdout.splitlines()
    assert paths == [
        str(out / "00000-4-orange-dinosaur-in-a-suit.png"),
        str(out / "00001-5-orange-dinosaur-in-a-suit.png"),
    ]
    for path in paths:
        with Image.open(path) as image:
            assert image.size == (16, 16)


def test_generate_subprocess_stdout_and_stderr(tiny_model_path, tmp_path):
    result = run_cli(
        "generate", "一个穿着西服的橙色恐龙", "-n", "2", "--model", str(tiny_model_path), "--out-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(Path(line).is_file() and line.endswith(".png") for line in lines)
    assert "drawn at random" in result.stderr  # no --seed: the drawn seed is logged on stderr


def test_drawn_seed_logged_when_used(tiny_model_path, tmp_path):
    every_line_seeded = tmp_path / "seeded.txt"
    every_line_seeded.write_text("blue cat --seed 1\nred dog --seed 2\n", encoding="utf-8")
    one_line_unseeded = tmp_path / "mixed.txt"
    one_line_unseeded.write_text("blue cat --seed 1\nred dog\ngreen frog\n", encoding="utf-8")
    common = ["-n", "1", "--model", str(tiny_model_path), "--out-dir", str(tmp_path / "out")]
    seeded = run_cli("generate", "--prompts", str(every_line_seeded), *common)
    mixed = run_cli("generate", "--prompts", str(one_line_unseeded), *common)
    assert seeded.returncode == 0, seeded.stderr
    assert "drawn at random" not in seeded.stderr
    assert mixed.returncode == 0, mixed.stderr
    assert mixed.stderr.count("drawn at random") == 1


@pytest.mark.parametrize("command_name", ["generate", "eval"])
def test_cli_sampling_defaults_match_library(command_name):
    # The CLI repeats the library defaults so that `--help` does not import torch. They must stay equal.
    import typer
    from dalle.model import SamplingSettings

    command = typer.main.get_command(app).commands[command_name]
    defaults = {param.name: param.default for param in command.params}
    library = SamplingSettings()

    assert defaults["guidance_scale"] == library.guidance_scale
    assert defaults["temperature"] == library.temperature
    assert defaults["top_k"] == library.top_k
    assert defaults["top_p"] == library.top_p


def test_same_seed_same_png(tiny_model_path, tmp_path):
    args = ["generate", "blue cat", "-n", "1", "--seed", "9", "--model", str(tiny_model_path)]
    first = runner.invoke(app, [*args, "--out-dir", str(tmp_path / "a")]).stdout.strip()
    second = runner.invoke(app, [*args, "--out-dir", str(tmp_path / "b")]).stdout.strip()
    assert Path(first).read_bytes() == Path(second).read_bytes()


def test_second_run_never_overwrites(tiny_model_path, tmp_path):
    args = [
        "generate",
        "red frog",
        "-n",
        "2",
        "--seed",
        "0",
        "--model",
        str(tiny_model_path),
        "--out-dir",
        str(tmp_path),
    ]
    first = runner.invoke(app, args).stdout.splitlines()
    second = runner.invoke(app, args).stdout.splitlines()
    assert not set(first) & set(second)
    assert len(list(tmp_path.glob("*.png"))) == 4
    assert next_index(tmp_path) == 4


def test_batch_size_does_not_change_images(tiny_model_path, tmp_path):
    base = ["generate", "pink bird", "-n", "3", "--seed", "2", "--model", str(tiny_model_path)]
    one = runner.invoke(app, [*base, "--batch-size", "1", "--out-dir", str(tmp_path / "one")]).stdout.splitlines()
    three = runner.invoke(app, [*base, "--batch-size", "3", "--out-dir", str(tmp_path / "three")]).stdout.splitlines()
    assert [Path(p).read_bytes() for p in one] == [Path(p).read_bytes() for p in three]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "  "], "prompt 1 is empty"),
        (["generate", "cat", "--model", "missing.safetensors"], "model file not found: missing.safetensors"),
        (["generate", "cat", "--bogus"], "No such option: --bogus"),
        (["generate", "cat", "--top-p", "1.5", "--model", "{model}"], "--top-p=1.5"),
        (
            ["generate", "cat", "--device", "tpu", "--model", "{model}"],
            "invalid device 'tpu': use cpu, cuda, cuda:N or auto",
        ),
    ],
)
def test_bad_input_one_line_exit_2(tiny_model_path, tmp_path, args, message):
    args = [a.replace("{model}", str(tiny_model_path)) for a in args]
    result = (
        run_cli(*args, "--out-dir", str(tmp_path / "o"))
        if args[0] == "generate" and "--bogus" not in args
        else run_cli(*args)
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_pickle_model_rejected(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, path)
    result = run_cli("generate", "cat", "--model", str(path), "--out-dir", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "pickle" in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_out_dir(tiny_model_path, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("generate", "cat", "--model", str(tiny_model_path), "--out-dir", str(blocker / "sub"))
    assert result.returncode == 2
    assert "cannot create output folder" in result.stderr
    assert list(tmp_path.iterdir()) == [blocker]


def test_debug_shows_traceback(tmp_path):
    result = run_cli("--debug", "generate", "cat", "--model", str(tmp_path / "none.safetensors"))
    assert result.returncode == 2  # --debug adds the traceback; bad input still exits with 2
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: ")


def test_top_k_zero_message():
    result = run_cli("generate", "red cat", "--top-k", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: invalid --top-k=0: must be >= 1; omit it to keep all tokens"


def test_top_k_above_codebook_names_flag(tiny_model_path, tmp_path):
    result = run_cli(
        "generate", "red cat", "--top-k", "5000", "--model", str(tiny_model_path), "--out-dir", str(tmp_path)
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid --top-k=5000: must be between 1 and the codebook size")
    assert list(tmp_path.iterdir()) == []


def test_dataset_with_stray_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (16, 16)).save(data / "a.png")
    (data / "a.txt").write_text("a cat\n")
    (data / "notes.pdf").write_bytes(b"%PDF")
    result = run_cli("train", "vae", str(data), "--out", str(tmp_path / "v.safetensors"), "--steps", "1")
    assert result.returncode == 2
    assert "notes.pdf" in result.stderr
    assert not (tmp_path / "v.safetensors").exists()


def test_dataset_with_broken_image(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes(b"not really a png")
    (data / "a.txt").write_text("a cat\n")
    result = run_cli("train", "vae", str(data), "--out", str(tmp_path / "v.safetensors"), "--steps", "1")
    assert result.returncode == 2
    assert "cannot read image" in result.stderr
    assert "a.png" in result.stderr


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("generate", "train", "encode", "data"):
        assert command in result.stdout


def test_help_does_not_import_torch():
    code = "import sys; from dalle.cli.main import main; main(['--help']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(
    ("prompt", "slug"),
    [
        ("Orange dinosaur in a suit!", "orange-dinosaur-in-a-suit"),
        ("a/b\\c", "a-b-c"),
        ("Café crème", "cafe-creme"),
        ("con", "con-"),
    ],
)
def test_slugify(prompt, slug):
    assert slugify(prompt) == slug


def test_slugify_chinese_is_hash_and_short():
    slug = slugify("一个穿着西服的橙色恐龙")
    assert slug.startswith("p")
    assert len(slug) == 11
    assert len(slugify("x" * 300).encode()) <= 60


def test_written_files_get_umask_permissions(tiny_model_path, tmp_path):
    result = runner.invoke(
        app, ["generate", "red cat", "-n", "1", "--model", str(tiny_model_path), "--out-dir", str(tmp_path)]
    )
    mask = os.umask(0)
    os.umask(mask)
    mode = Path(result.stdout.strip()).stat().st_mode & 0o777
    assert mode == 0o666 & ~mask


def test_log_eta_ignores_time_before_first_step(monkeypatch, caplog):
    # A run resumed at step 94 spends 100 s loading data, then 2 s per step: at step 100, 10 steps take 20 s.
    from dalle.cli import train as train_cli

    clock = iter([0.0, 100.0, 110.0])
    monkeypatch.setattr(train_cli.time, "monotonic", lambda: next(clock))
    log = train_cli._LogEvery("vae", every=10)
    with caplog.at_level("INFO", logger="dalle.cli"):
        log(95, 110, 0.5, {})
        log(100, 110, 0.4, {})
    messages = [r.getMessage() for r in caplog.records if r.name == "dalle.cli"]
    assert messages == ["vae step 100/110 loss 0.4000 elapsed 110s eta 20s"]
