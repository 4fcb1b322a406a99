"""English and Chinese captions for toy-world scenes.

Each attribute has several synonyms and each language several templates, so
the model learns the concepts rather than one fixed sentence. Two forms are
always among the templates: "orange dinosaur in a suit" and
"一个穿着西服的橙色恐龙".
"""

from __future__ import annotations

import random

from .toyworld import Scene

SUBJECT_EN: dict[str, tuple[str, ...]] = {
    "dinosaur": ("dinosaur", "dino"),
    "cat": ("cat", "kitten"),
    "dog": ("dog", "puppy"),
    "robot": ("robot",),
    "bird": ("bird",),
    "bear": ("bear", "teddy bear"),
    "rabbit": ("rabbit", "bunny"),
    "penguin": ("penguin",),
    "snowman": ("snowman",),
    "frog": ("frog",),
}
COLOUR_EN: dict[str, tuple[str, ...]] = {
    "red": ("red",),
    "orange": ("orange",),
    "yellow": ("yellow",),
    "green": ("green",),
    "blue": ("blue",),
    "purple": ("purple", "violet"),
    "pink": ("pink",),
    "brown": ("brown",),
    "white": ("white",),
    "gray": ("gray", "grey"),
}
OUTFIT_EN: dict[str, tuple[str, ...]] = {
    "none": ("",),
    "suit": ("in a suit", "wearing a suit", "in a business suit"),
    "hat": ("wearing a top hat", "in a hat", "with a hat"),
    "crown": ("wearing a crown", "with a crown"),
    "sunglasses": ("wearing sunglasses", "with sunglasses", "in sunglasses"),
    "scarf": ("wearing a scarf", "with a scarf"),
}
BACKGROUND_EN: dict[str, tuple[str, ...]] = {
    "meadow": ("in a meadow", "on the grass"),
    "beach": ("on a beach", "at the beach"),
    "night": ("at night", "under the night sky"),
    "snow": ("in the snow",),
    "room": ("in a room", "indoors"),
}
POSITION_EN: dict[str, tuple[str, ...]] = {
    "left": ("on the left",),
    "center": ("in the middle", "in the center"),
    "right": ("on the right",),
}
SIZE_EN: dict[str, tuple[str, ...]] = {"small": ("small", "little"), "large": ("big", "large")}

SUBJECT_ZH: dict[str, tuple[str, ...]] = {
    "dinosaur": ("恐龙",),
    "cat": ("猫", "小猫"),
    "dog": ("狗", "小狗"),
    "robot": ("机器人",),
    "bird": ("鸟", "小鸟"),
    "bear": ("熊", "小熊"),
    "rabbit": ("兔子", "小兔子"),
    "penguin": ("企鹅",),
    "snowman": ("雪人",),
    "frog": ("青蛙",),
}
COLOUR_ZH: dict[str, tuple[str, ...]] = {
    "red": ("红色",),
    "orange": ("橙色",),
    "yellow": ("黄色",),
    "green": ("绿色",),
    "blue": ("蓝色",),
    "purple": ("紫色",),
    "pink": ("粉色", "粉红色"),
    "brown": ("棕色",),
    "white": ("白色",),
    "gray": ("灰色",),
}
OUTFIT_ZH: dict[str, tuple[str, ...]] = {
    "none": ("",),
    "suit": ("穿着西服", "穿着西装"),
    "hat": ("戴着帽子", "戴着礼帽"),
    "crown": ("戴着皇冠",),
    "sunglasses": ("戴着墨镜", "戴着太阳镜"),
    "scarf": ("围着围巾",),
}
BACKGROUND_ZH: dict[str, tuple[str, ...]] = {
    "meadow": ("草地上",),
    "beach": ("海滩上",),
    "night": ("夜空下",),
    "snow": ("雪地里",),
    "room": ("房间里",),
}
POSITION_ZH: dict[str, tuple[str, ...]] = {"left": ("左边",), "center": ("中间",), "right": ("右边",)}
SIZE_ZH: dict[str, tuple[str, ...]] = {"small": ("小小的",), "large": ("大大的",)}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def english_caption(scene: Scene, rng: random.Random) -> str:
    colour = rng.choice(COLOUR_EN[scene.colour])
    subject = rng.choice(SUBJECT_EN[scene.subject])
    outfit = rng.choice(OUTFIT_EN[scene.outfit])
    background = rng.choice(BACKGROUND_EN[scene.background])
    position = rng.choice(POSITION_EN[scene.position])
    size = rng.choice(SIZE_EN[scene.size])
    core = f"{colour} {subject} {outfit}".strip()

    template = rng.randrange(6)
    if template == 0:
        text = core
    elif template == 1:
        text = f"{_article(core)} {core}"
    elif template == 2:
        text = f"{_article(core)} {core} {background}"
    elif template == 3:
        text = f"a picture of {_article(core)} {core}"
    elif template == 4:
        sized = f"{size} {core}"
        text = f"{_article(sized)} {sized} {position}"
    else:
        text = f"{_article(core)} {core} {background}, {position}"
    return text


def chinese_caption(scene: Scene, rng: random.Random) -> str:
    colour = rng.choice(COLOUR_ZH[scene.colour])
    subject = rng.choice(SUBJECT_ZH[scene.subject])
    outfit = rng.choice(OUTFIT_ZH[scene.outfit])
    background = rng.choice(BACKGROUND_ZH[scene.background])
    position = rng.choice(POSITION_ZH[scene.position])
    size = rng.choice(SIZE_ZH[scene.size])
    described = f"{outfit}的{colour}{subject}" if outfit else f"{colour}的{subject}"

    template = rng.randrange(5)
    if template == 0:
        text = f"一个{described}"
    elif template == 1:
        text = f"{colour}的{subject}{outfit}" if outfit else f"{colour}{subject}"
    elif template == 2:
        text = f"{background}的一个{described}"
    elif template == 3:
        text = f"{position}有一个{size}{described}"
    else:
        text = described
    return text


def caption(scene: Scene, rng: random.Random, chinese_share: float = 0.5) -> str:
    """Write one caption for `scene`, in Chinese with probability `chinese_share`."""
    if rng.random() < chinese_share:
        return chinese_caption(scene, rng)
    return english_caption(scene, rng)
