"""`dalle generate` with prompt files, pipelines, metadata and output modes, run as real subprocesses."""

from __future__ import annotations

import io
import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from .test_cli import DALLE, run_cli


def gen(model: Path, out: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("generate", "--model", str(model), "--out-dir", str(out), *args, stdin=stdin)


def records(result: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_prompt_file_bom_crlf_comments_overrides(tiny_model_path, tmp_path):
    prompts = tmp_path / "prompts.txt"
    text = "# a comment\r\n\r\nred cat --seed 7 -n 2\r\n一个穿着西服的橙色恐龙\t--guidance-scale 4.5\r\nblue bird\r\n"
    prompts.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = gen(tiny_model_path, tmp_path / "out", "--prompts", str(prompts), "-n", "1", "--seed", "0", "--json")
    assert result.returncode == 0, result.stderr
    rows = records(result)
    assert [(r["prompt"], r["seed"]) for r in rows] == [
        ("red cat", 7),
        ("red cat", 8),
        ("一个穿着西服的橙色恐龙", 0),
        ("blue bird", 0),
    ]
    assert rows[2]["guidance_scale"] == 4.5
    assert rows[0]["guidance_scale"] == 2.0


def test_prompt_file_utf16(tiny_model_path, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes("白色的熊\nred frog\n".encode("utf-16"))  # Python writes a BOM for "utf-16"
    result = gen(tiny_model_path, tmp_path / "out", "--prompts", str(prompts), "-n", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert [r["prompt"] for r in records(result)] == ["白色的熊", "red frog"]


def test_backslash_and_quotes_kept(tiny_model_path, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text('a "quoted" cat \\\n', encoding="utf-8")
    result = gen(tiny_model_path, tmp_path / "out", "--prompts", str(prompts), "-n", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert records(result)[0]["prompt"] == 'a "quoted" cat \\'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("red cat --steps 5", "prompts.txt:2: unknown override '--steps'"),
        ("red cat --seed -3", "prompts.txt:2: invalid value '-3' for --seed"),
        ("red cat --top-p 2", "prompts.txt:2: invalid value '2' for --top-p"),
        ("red cat --seed", "prompts.txt:2: override '--seed' has no value"),
        ("\t--seed 3", "prompts.txt:2: the prompt is empty"),
    ],
)
def test_bad_prompt_line_stops_before_any_image(tiny_model_path, tmp_path, line, message):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"blue bird\n{line}\n", encoding="utf-8")
    out = tmp_path / "out"
    result = gen(tiny_model_path, out, "--prompts", str(prompts))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or not list(out.iterdir())


def test_prompt_starting_with_dash(tiny_model_path, tmp_path):
    result = run_cli(
        "generate",
        "--model",
        str(tiny_model_path),
        "--out-dir",
        str(tmp_path),
        "-n",
        "1",
        "--json",
        "--",
        "-5 degrees cat",
    )
    assert result.returncode == 0, result.stderr
    assert records(result)[0]["prompt"] == "-5 degrees cat"


def test_cjk_and_emoji_pass_through(tiny_model_path, tmp_path):
    prompt = "🦖 恐龙 in a suit ✨"
    result = gen(tiny_model_path, tmp_path, prompt, "-n", "1", "--json")
    assert result.returncode == 0, result.stderr
    row = records(result)[0]
    assert row["prompt"] == prompt
    with Image.open(row["path"]) as image:
        assert json.loads(image.text["dalle"])["prompt"] == prompt


def test_stdin_dash_and_prompts_dash(tiny_model_path, tmp_path):
    for args in (["-"], ["--prompts", "-"]):
        result = gen(
            tiny_model_path, tmp_path / args[0].strip("-"), *args, "-n", "1", "--json", stdin="red cat\ngreen frog\n"
        )
        assert result.returncode == 0, result.stderr
        assert [r["prompt"] for r in records(result)] == ["red cat", "green frog"]


def test_no_prompt_with_terminal_stdin_exits_2(tiny_model_path, tmp_path):
    for args in ([], ["-"]):
        primary, secondary = pty.openpty()
        try:
            result = subprocess.run(
                [*DALLE, "generate", "--model", str(tiny_model_path), *args],
                stdin=secondary,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            os.close(primary)
            os.close(secondary)
        assert result.returncode == 2, args
        assert result.stdout == ""
        assert "prompt" in result.stderr


def test_file_names_slash_long_and_unique(tiny_model_path, tmp_path):
    long_prompt = "orange dinosaur " * 20  # 320 characters
    first = gen(tiny_model_path, tmp_path, "a/b cat", long_prompt, "-n", "1", "--seed", "3")
    second = gen(tiny_model_path, tmp_path, "a/b cat", "-n", "1", "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    names = [Path(p).name for p in first.stdout.splitlines() + second.stdout.splitlines()]
    assert names[0] == "00000-3-a-b-cat.png"
    assert names[1].startswith("00001-3-orange-dinosaur-orange")
    assert len(names[1].split("-", 2)[2].removesuffix(".png").encode()) <= 60
    assert names[2] == "00002-3-a-b-cat.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_grid_writes_contact_sheet(tiny_model_path, tmp_path):
    result = gen(tiny_model_path, tmp_path, "red cat", "-n", "3", "--grid", "--seed", "0")
    assert result.returncode == 0, result.stderr
    paths = result.stdout.splitlines()
    assert len(paths) == 4
    assert Path(paths[3]).name == "00003-grid-red-cat.png"
    with Image.open(paths[3]) as sheet:
        assert sheet.size == (16 * 3, 16)
        assert sheet.text["parameters"].startswith("red cat\n")
        assert sheet.text["parameters"].endswith("Grid images: 3, Grid columns: 3")

    # The sheet's metadata lists each image's settings in order, equal to the single files' metadata.
    info = run_cli("info", paths[3], paths[1])
    assert info.returncode == 0, info.stderr
    rows = [json.loads(line) for line in info.stdout.splitlines()]
    assert [(row["grid_index"], row["seed"]) for row in rows[:3]] == [(0, 0), (1, 1), (2, 2)]
    single = rows[3]
    assert "grid_index" not in single
    assert {k: v for k, v in rows[1].items() if k not in ("path", "grid_index")} == {
        k: v for k, v in single.items() if k != "path"
    }

    # --from needs one image, not a sheet, and takes its seed and count from the image.
    again = gen(tiny_model_path, tmp_path / "again", "--from", paths[3])
    assert again.returncode == 2
    assert "contact sheet" in again.stderr
    assert "Traceback" not in again.stderr
    with_count = gen(tiny_model_path, tmp_path / "again", "--from", paths[0], "-n", "3")
    assert with_count.returncode == 2
    assert "drop -n" in with_count.stderr

    # Empty sheet metadata gives one error line.
    with Image.open(paths[3]) as sheet:
        payload = json.loads(sheet.text["dalle-grid"])
        payload["images"] = []
        info_chunk = PngImagePlugin.PngInfo()
        info_chunk.add_itxt("dalle-grid", json.dumps(payload))
        sheet.save(tmp_path / "empty-sheet.png", pnginfo=info_chunk)
    empty = run_cli("info", str(tmp_path / "empty-sheet.png"))
    assert empty.returncode == 2
    assert "no images listed" in empty.stderr


def test_grid_json_line_and_stdout_conflict(tiny_model_path, tmp_path):
    result = gen(tiny_model_path, tmp_path, "red cat", "-n", "2", "--grid", "--seed", "5", "--json")
    assert result.returncode == 0, result.stderr
    rows = records(result)
    assert [row.get("grid", False) for row in rows] == [False, False, True]
    assert rows[2]["path"] == str(tmp_path / "00002-grid-red-cat.png")
    assert rows[2]["seeds"] == [5, 6]

    to_stdout = gen(tiny_model_path, tmp_path, "red cat", "-n", "1", "--grid", "-o", "-")
    assert to_stdout.returncode == 2
    assert "drop --grid or -o -" in to_stdout.stderr


def test_output_dash_writes_one_png_to_stdout(tiny_model_path, tmp_path):
    result = subprocess.run(
        [*DALLE, "generate", "white bear", "-n", "1", "--seed", "2", "-o", "-", "--model", str(tiny_model_path)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with Image.open(io.BytesIO(result.stdout)) as image:
        assert image.format == "PNG"
        assert json.loads(image.text["dalle"])["seed"] == 2
    too_many = gen(tiny_model_path, tmp_path, "white bear", "-n", "2", "-o", "-")
    assert too_many.returncode == 2
    assert "single PNG" in too_many.stderr


def test_metadata_info_and_from_reproduce_bytes(tiny_model_path, tmp_path):
    first = gen(
        tiny_model_path, tmp_path / "a", "一个戴着皇冠的红色猫", "-n", "1", "--temperature", "0.9", "--top-k", "10"
    )
    assert first.returncode == 0, first.stderr
    original = Path(first.stdout.strip())
    with Image.open(original) as image:
        parameters = image.text["parameters"]
    assert parameters.splitlines()[0] == "一个戴着皇冠的红色猫"
    assert "Seed: " in parameters
    assert "CFG scale: 2.0" in parameters

    info = run_cli("info", str(original))
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["prompt"] == "一个戴着皇冠的红色猫"
    assert data["top_k"] == 10
    assert data["temperature"] == 0.9
    assert str(data["seed"]) in first.stderr  # the drawn seed is also logged

    again = gen(tiny_model_path, tmp_path / "b", "--from", str(original))
    assert again.returncode == 0, again.stderr
    assert Path(again.stdout.strip()).read_bytes() == original.read_bytes()


def test_from_with_sampling_overrides(tiny_model_path, tmp_path):
    original = gen(tiny_model_path, tmp_path / "a", "red cat", "-n", "1", "--seed", "3")
    assert original.returncode == 0, original.stderr
    overrides = ["--temperature", "1.3", "--guidance-scale", "5", "--top-k", "20"]

    again = gen(tiny_model_path, tmp_path / "b", "--from", original.stdout.strip(), *overrides)
    direct = gen(tiny_model_path, tmp_path / "c", "red cat", "-n", "1", "--seed", "3", *overrides)

    assert again.returncode == 0, again.stderr
    assert direct.returncode == 0, direct.stderr
    assert Path(again.stdout.strip()).read_bytes() == Path(direct.stdout.strip()).read_bytes()
    info = json.loads(run_cli("info", again.stdout.strip()).stdout)
    assert (info["temperature"], info["guidance_scale"], info["top_k"]) == (1.3, 5.0, 20)
    assert info["seed"] == 3


def test_info_rejects_foreign_png(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    result = run_cli("info", str(plain))
    assert result.returncode == 2
    assert "no dalle metadata" in result.stderr


def test_info_goes_on_after_an_unreadable_file(tiny_model_path, tmp_path):
    written = gen(tiny_model_path, tmp_path / "out", "red cat", "-n", "1", "--seed", "3")
    assert written.returncode == 0, written.stderr
    good = written.stdout.strip()
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)

    result = run_cli("info", str(plain), good)

    assert result.returncode == 2
    assert [json.loads(line)["seed"] for line in result.stdout.splitlines()] == [3]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert str(plain) in errors[0]
    assert "Traceback" not in result.stderr


def test_json_lines_parse(tiny_model_path, tmp_path):
    result = gen(tiny_model_path, tmp_path, "red cat", "blue bird", "-n", "2", "--json", "--seed", "1")
    rows = records(result)
    assert len(rows) == 4
    for row in rows:
        assert set(row) >= {
            "path",
            "prompt",
            "seed",
            "temperature",
            "top_k",
            "top_p",
            "guidance_scale",
            "model_sha256",
            "tool_version",
        }
        assert Path(row["path"]).is_file()


def test_batching_across_prompts_keeps_images(tiny_model_path, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("red cat\nblue bird --seed 4\ngreen frog\n", encoding="utf-8")
    one = gen(
        tiny_model_path, tmp_path / "one", "--prompts", str(prompts), "-n", "2", "--seed", "0", "--batch-size", "1"
    )
    six = gen(
        tiny_model_path, tmp_path / "six", "--prompts", str(prompts), "-n", "2", "--seed", "0", "--batch-size", "6"
    )
    assert [Path(p).read_bytes() for p in one.stdout.splitlines()] == [
        Path(p).read_bytes() for p in six.stdout.splitlines()
    ]


def test_quiet_leaves_stderr_empty(tiny_model_path, tmp_path):
    result = gen(tiny_model_path, tmp_path, "red cat", "-n", "1", "--quiet")
    assert result.returncode == 0
    assert result.stderr == ""


def test_root_quiet_empties_stderr(tiny_model_path, tmp_path):
    args = ["generate", "red cat", "-n", "1", "--model", str(tiny_model_path), "--out-dir", str(tmp_path)]
    loud = run_cli(*args)
    assert "wrote" in loud.stderr

    quiet = run_cli("-q", *args)
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert len(quiet.stdout.splitlines()) == 1


def test_head_closes_stdout_quietly(tiny_model_path, tmp_path):
    command = (
        f"{sys.executable} -m dalle.cli generate 'red cat' -n 6 --batch-size 1 --model {tiny_model_path} "
        f"--out-dir {tmp_path} | head -1; exit ${{PIPESTATUS[0]}}"
    )
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert "BrokenPipe" not in result.stderr


def test_closed_stdout_names_unlisted_file(tiny_model_path, tmp_path):
    # A pipe whose read end is already closed: the first path printed fails, every time.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*DALLE, "generate", "red cat", "-n", "1", "--model", str(tiny_model_path), "--out-dir", str(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)

    assert result.returncode == 0, result.stderr
    written = sorted(tmp_path.glob("*.png"))
    assert len(written) == 1
    assert f"{written[0]} was not printed" in result.stderr
    assert "Traceback" not in result.stderr


def test_prompts_stream_before_stdin_ends(tiny_model_path, tmp_path):
    process = subprocess.Popen(
        [
            *DALLE,
            "generate",
            "-",
            "-n",
            "1",
            "--model",
            str(tiny_model_path),
            "--out-dir",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        process.stdin.write("red cat\n")
        process.stdin.flush()
        first = process.stdout.readline()  # arrives while stdin is still open
        assert first.strip().endswith("-red-cat.png")
        process.stdin.write("blue bird\n")
        process.stdin.close()
        assert process.stdout.readline().strip().endswith("-blue-bird.png")
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()


def test_ctrl_c_leaves_only_whole_files(tiny_model_path, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("red cat\n" * 400, encoding="utf-8")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            *DALLE,
            "generate",
            "--prompts",
            str(prompts),
            "-n",
            "1",
            "--batch-size",
            "1",
            "--model",
            str(tiny_model_path),
            "--out-dir",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A background job inherits SIGINT as ignored, and Python then keeps ignoring it.
        # Restoring the default action lets the child see Ctrl-C however the tests were started.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    process.stdout.readline()
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    files = list(out.iterdir())
    assert files and all(f.suffix == ".png" and not f.name.startswith(".") for f in files)
    for path in files:
        with Image.open(path) as image:
            image.load()


def test_empty_stdin_warns(tiny_model_path, tmp_path):
    result = gen(tiny_model_path, tmp_path, "-", stdin="")
    assert result.returncode == 0
    assert result.stdout == ""
    assert "no prompts were read" in result.stderr


def test_version_flag():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("dalle ")


def test_bare_n_in_prompt_warns(caplog):
    from dalle.cli.prompts import parse_line

    with caplog.at_level("WARNING", logger="dalle.cli"):
        bare = parse_line("red cat -n 2", "p.txt:1")
        tabbed = parse_line("red cat\t-n 2", "p.txt:2")
    assert bare is not None
    assert bare.text == "red cat -n 2"
    assert tabbed is not None
    assert tabbed.overrides == {"n": 2}
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["p.txt:1:"]
    assert "put a tab before '-n'" in caplog.text
