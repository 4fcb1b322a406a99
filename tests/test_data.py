"""Loading image folders: what is cropped or resized gets logged."""

from __future__ import annotations

import numpy as np
from dalle.model.data import load_images, scan_folder
from PIL import Image


def _write(folder, name: str, size: tuple[int, int]) -> None:
    Image.new("RGB", size, (200, 30, 30)).save(folder / f"{name}.png")
    (folder / f"{name}.txt").write_text("a red square\n", encoding="utf-8")


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dalle.model.data"]


def test_load_images_logs_cropped_and_resized(tmp_path, caplog):
    _write(tmp_path, "a_wide", (40, 20))
    _write(tmp_path, "b_big", (32, 32))
    _write(tmp_path, "c_exact", (16, 16))
    with caplog.at_level("INFO", logger="dalle.model.data"):
        images = load_images(scan_folder(tmp_path), 16)
    assert images.shape == (3, 3, 16, 16)
    assert np.all(images[:, 0].numpy() == 200)
    assert _messages(caplog) == [
        f"images of another size than 16 x 16: 1 of 3 centre-cropped to a square, 2 of 3 resized; "
        f"the first is {tmp_path / 'a_wide.png'} (40 x 20)"
    ]


def test_load_images_silent_when_sizes_match(tmp_path, caplog):
    _write(tmp_path, "a", (16, 16))
    with caplog.at_level("INFO", logger="dalle.model.data"):
        load_images(scan_folder(tmp_path), 16)
    assert _messages(caplog) == []
