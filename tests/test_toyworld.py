import json
import random

import numpy as np
from dalle.model.captions import chinese_caption, english_caption
from dalle.model.toyworld import (
    BACKGROUNDS,
    COLOURS,
    HELD_OUT,
    OUTFITS,
    SUBJECTS,
    Scene,
    random_scene,
    render,
    write_dataset,
)


def test_world_size_meets_minimums():
    assert len(SUBJECTS) >= 10
    assert "dinosaur" in SUBJECTS
    assert len(COLOURS) >= 10
    assert "orange" in COLOURS
    assert len(OUTFITS) >= 6
    assert "suit" in OUTFITS
    assert "none" in OUTFITS
    assert len(BACKGROUNDS) >= 5
    assert ("dinosaur", "orange", "suit") in HELD_OUT
    assert len(HELD_OUT) >= 5


def test_render_is_deterministic_per_seed():
    scene = Scene("dinosaur", "orange", "suit", "beach", "center", "large", "right")
    a = np.asarray(render(scene, 64, seed=3))
    b = np.asarray(render(scene, 64, seed=3))
    c = np.asarray(render(scene, 64, seed=4))
    assert a.shape == (64, 64, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_outfit_changes_pixels():
    base = Scene("cat", "red", "none", "meadow", "center", "large", "right")
    plain = np.asarray(render(base, 64, seed=0)).astype(int)
    for outfit in OUTFITS[1:]:
        dressed = np.asarray(render(Scene(**{**base.to_dict(), "outfit": outfit}), 64, seed=0)).astype(int)
        assert np.abs(plain - dressed).sum() > 500, outfit


def test_held_out_never_drawn():
    rng = random.Random(0)
    combos = {random_scene(rng).combination() for _ in range(20000)}
    assert not combos & set(HELD_OUT)
    # The headline concepts still appear apart.
    assert any(c[0] == "dinosaur" and c[2] == "suit" for c in combos)
    assert any(c[0] == "dinosaur" and c[1] == "orange" for c in combos)
    assert any(c[1] == "orange" and c[2] == "suit" for c in combos)


def test_captions_include_headline_forms():
    scene = Scene("dinosaur", "orange", "suit", "beach", "center", "large", "right")
    rng = random.Random(0)
    english = {english_caption(scene, rng) for _ in range(300)}
    chinese = {chinese_caption(scene, rng) for _ in range(300)}
    assert "orange dinosaur in a suit" in english
    assert "一个穿着西服的橙色恐龙" in chinese


def test_write_dataset_files(tmp_path):
    scenes = write_dataset(tmp_path, count=5, seed=1, captions_per_image=4)
    assert len(scenes) == 5
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"{i:06d}.png" for i in range(5)]
    lines = (tmp_path / "000000.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    records = [json.loads(line) for line in (tmp_path / "attributes.jsonl").read_text().splitlines()]
    assert records[0]["image"] == "000000.png"
    assert records[0]["subject"] == scenes[0].subject
