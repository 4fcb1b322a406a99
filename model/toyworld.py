"""Procedural toy world: captioned scenes of coloured creatures in outfits.

Every sample is drawn with Pillow from its attributes, so the ground truth of
each picture is known. The default model is trained on this world, the tests
use it, and the evaluation judge learns from it.

Subjects are drawn facing right in a 100x100 frame. Each drawing returns the
anchor points (head, eyes, neck, torso) that the outfit drawings attach to.
Scenes are rendered at twice the output size and downsampled, which gives
anti-aliased edges.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw

SUBJECTS = ("dinosaur", "cat", "dog", "robot", "bird", "bear", "rabbit", "penguin", "snowman", "frog")
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "white", "gray")
OUTFITS = ("none", "suit", "hat", "crown", "sunglasses", "scarf")
BACKGROUNDS = ("meadow", "beach", "night", "snow", "room")
POSITIONS = ("left", "center", "right")
SIZES = ("small", "large")
FACINGS = ("left", "right")

# (subject, colour, outfit) combinations that training data never contains, so
# a prompt for one of them must be composed from concepts seen apart.
HELD_OUT: tuple[tuple[str, str, str], ...] = (
    ("dinosaur", "orange", "suit"),
    ("cat", "blue", "hat"),
    ("robot", "pink", "scarf"),
    ("penguin", "green", "sunglasses"),
    ("dog", "purple", "crown"),
    ("frog", "red", "suit"),
)

RGB = tuple[int, int, int]

COLOUR_RGB: dict[str, RGB] = {
    "red": (214, 40, 40),
    "orange": (245, 130, 20),
    "yellow": (245, 215, 40),
    "green": (60, 170, 60),
    "blue": (40, 90, 220),
    "purple": (140, 60, 190),
    "pink": (250, 140, 190),
    "brown": (130, 80, 40),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
}

SUIT_RGB: RGB = (35, 35, 48)
TIE_RGB: RGB = (200, 25, 35)
GOLD_RGB: RGB = (240, 195, 30)
BEAK_RGB: RGB = (235, 170, 30)
INK_RGB: RGB = (20, 20, 20)


@dataclass(frozen=True)
class Scene:
    """Ground-truth attributes of one toy-world picture."""

    subject: str
    colour: str
    outfit: str
    background: str
    position: str
    size: str
    facing: str

    def combination(self) -> tuple[str, str, str]:
        return (self.subject, self.colour, self.outfit)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Anchors:
    """Points, in the 100x100 subject frame, that outfits attach to."""

    head: tuple[float, float, float]  # centre x, centre y, radius
    eyes: list[tuple[float, float]]
    neck: tuple[float, float, float]  # centre x, centre y, half width
    torso: tuple[float, float, float, float]  # x0, y0, x1, y1


def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(max(0, min(255, int(c * factor))) for c in rgb)  # type: ignore[return-value]


def _tint(rgb: RGB, amount: float) -> RGB:
    """Mix a colour towards white by `amount` (0 keeps it, 1 gives white)."""
    return tuple(int(c + (255 - c) * amount) for c in rgb)  # type: ignore[return-value]


class _Pen:
    """Draws in the 100x100 subject frame onto a larger RGBA layer."""

    def __init__(self, draw: ImageDraw.ImageDraw, scale: float, outline: RGB) -> None:
        self.draw = draw
        self.scale = scale
        self.outline = outline
        self.width = max(1, round(scale * 1.6))

    def _box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        s = self.scale
        return [x0 * s, y0 * s, x1 * s, y1 * s]

    def ellipse(self, box: tuple[float, float, float, float], fill: RGB, outline: bool = True) -> None:
        self.draw.ellipse(self._box(*box), fill=fill, outline=self.outline if outline else None, width=self.width)

    def circle(self, x: float, y: float, r: float, fill: RGB, outline: bool = True) -> None:
        self.ellipse((x - r, y - r, x + r, y + r), fill, outline)

    def rect(self, box: tuple[float, float, float, float], fill: RGB, outline: bool = True) -> None:
        self.draw.rectangle(self._box(*box), fill=fill, outline=self.outline if outline else None, width=self.width)

    def polygon(self, points: list[tuple[float, float]], fill: RGB, outline: bool = True) -> None:
        scaled = [(x * self.scale, y * self.scale) for x, y in points]
        self.draw.polygon(scaled, fill=fill, outline=self.outline if outline else None, width=self.width)

    def line(self, points: list[tuple[float, float]], fill: RGB, width: float) -> None:
        scaled = [(x * self.scale, y * self.scale) for x, y in points]
        self.draw.line(scaled, fill=fill, width=max(1, round(width * self.scale)))


def _eyes(pen: _Pen, eyes: list[tuple[float, float]], r: float = 3.0) -> None:
    for x, y in eyes:
        pen.circle(x, y, r, (255, 255, 255), outline=False)
        pen.circle(x + 0.6, y, r * 0.55, INK_RGB, outline=False)


def _dinosaur(pen: _Pen, c: RGB) -> Anchors:
    dark = _shade(c, 0.75)
    for x in (30, 42, 54):  # back spikes
        pen.polygon([(x - 6, 52), (x, 38), (x + 6, 50)], dark)
    pen.polygon([(2, 78), (30, 56), (36, 78)], c)  # tail
    pen.rect((34, 76, 44, 97), dark)
    pen.rect((56, 76, 66, 97), dark)
    pen.ellipse((22, 44, 76, 86), c)
    pen.polygon([(58, 52), (66, 22), (80, 26), (74, 56)], c)  # neck
    pen.ellipse((60, 8, 96, 34), c)
    pen.line([(80, 28), (94, 26)], INK_RGB, 1.2)  # mouth
    eyes = [(80, 17)]
    _eyes(pen, eyes)
    return Anchors(head=(78, 21, 13), eyes=eyes, neck=(70, 44, 8), torso=(36, 50, 72, 82))


def _cat(pen: _Pen, c: RGB) -> Anchors:
    pen.line([(72, 84), (90, 70), (92, 48)], _shade(c, 0.8), 5)  # tail
    pen.ellipse((26, 52, 74, 96), c)
    pen.polygon([(31, 28), (34, 4), (48, 18)], c)
    pen.polygon([(52, 18), (66, 4), (69, 28)], c)
    pen.circle(50, 34, 20, c)
    pen.polygon([(47, 39), (53, 39), (50, 43)], (240, 120, 140))
    for y in (40, 44):
        pen.line([(30, y), (42, 42)], INK_RGB, 0.6)
        pen.line([(58, 42), (70, y)], INK_RGB, 0.6)
    eyes = [(42, 31), (58, 31)]
    _eyes(pen, eyes)
    return Anchors(head=(50, 34, 20), eyes=eyes, neck=(50, 54, 11), torso=(32, 56, 68, 90))


def _dog(pen: _Pen, c: RGB) -> Anchors:
    pen.line([(72, 80), (88, 62)], _shade(c, 0.8), 5)  # tail
    pen.ellipse((26, 52, 74, 96), c)
    pen.circle(50, 33, 19, c)
    pen.ellipse((24, 18, 36, 48), _shade(c, 0.7))  # floppy ears
    pen.ellipse((64, 18, 76, 48), _shade(c, 0.7))
    pen.ellipse((40, 36, 60, 50), _tint(c, 0.5))
    pen.circle(50, 39, 3.5, INK_RGB, outline=False)
    eyes = [(43, 28), (57, 28)]
    _eyes(pen, eyes)
    return Anchors(head=(50, 33, 19), eyes=eyes, neck=(50, 53, 11), torso=(32, 56, 68, 90))


def _robot(pen: _Pen, c: RGB) -> Anchors:
    pen.line([(50, 10), (50, 2)], INK_RGB, 1.5)
    pen.circle(50, 3, 3, (230, 40, 40))
    pen.rect((30, 42, 38, 66), _shade(c, 0.75))  # arms behind the body
    pen.rect((62, 42, 70, 66), _shade(c, 0.75))
    pen.rect((36, 84, 46, 98), _shade(c, 0.7))
    pen.rect((54, 84, 64, 98), _shade(c, 0.7))
    pen.rect((34, 40, 66, 86), c)
    pen.rect((32, 10, 68, 38), c)
    pen.rect((38, 30, 62, 33), INK_RGB, outline=False)  # mouth grille
    eyes = [(42, 21), (58, 21)]
    for x, y in eyes:
        pen.rect((x - 4, y - 4, x + 4, y + 4), (120, 230, 255))
    return Anchors(head=(50, 24, 18), eyes=eyes, neck=(50, 40, 10), torso=(34, 42, 66, 82))


def _bird(pen: _Pen, c: RGB) -> Anchors:
    pen.line([(42, 84), (40, 97)], BEAK_RGB, 1.5)
    pen.line([(56, 84), (58, 97)], BEAK_RGB, 1.5)
    pen.polygon([(18, 60), (4, 52), (8, 70)], _shade(c, 0.8))  # tail feathers
    pen.ellipse((16, 40, 80, 88), c)
    pen.circle(68, 32, 16, c)
    pen.polygon([(82, 28), (98, 33), (82, 38)], BEAK_RGB)
    pen.ellipse((30, 52, 60, 74), _shade(c, 0.8))  # wing
    eyes = [(72, 28)]
    _eyes(pen, eyes)
    return Anchors(head=(68, 32, 16), eyes=eyes, neck=(64, 48, 10), torso=(30, 50, 70, 84))


def _bear(pen: _Pen, c: RGB) -> Anchors:
    pen.ellipse((20, 48, 80, 98), c)
    pen.circle(33, 16, 8, c)
    pen.circle(67, 16, 8, c)
    pen.circle(50, 32, 20, c)
    pen.ellipse((40, 34, 60, 48), _tint(c, 0.45))
    pen.circle(50, 38, 3.5, INK_RGB, outline=False)
    eyes = [(42, 27), (58, 27)]
    _eyes(pen, eyes)
    return Anchors(head=(50, 32, 20), eyes=eyes, neck=(50, 52, 13), torso=(28, 56, 72, 92))


def _rabbit(pen: _Pen, c: RGB) -> Anchors:
    pen.ellipse((34, 0, 46, 32), c)
    pen.ellipse((54, 0, 66, 32), c)
    pen.ellipse((37, 5, 43, 27), (245, 170, 190), outline=False)
    pen.ellipse((57, 5, 63, 27), (245, 170, 190), outline=False)
    pen.ellipse((28, 54, 72, 98), c)
    pen.circle(50, 40, 16, c)
    pen.circle(50, 45, 2.5, (240, 120, 140), outline=False)
    eyes = [(44, 37), (56, 37)]
    _eyes(pen, eyes, 2.6)
    return Anchors(head=(50, 40, 16), eyes=eyes, neck=(50, 56, 10), torso=(32, 60, 68, 94))


def _penguin(pen: _Pen, c: RGB) -> Anchors:
    pen.ellipse((36, 90, 48, 98), BEAK_RGB)
    pen.ellipse((52, 90, 64, 98), BEAK_RGB)
    pen.ellipse((24, 14, 76, 96), c)
    pen.ellipse((34, 40, 66, 92), (250, 250, 250), outline=False)
    pen.polygon([(46, 34), (54, 34), (50, 42)], BEAK_RGB)
    eyes = [(42, 28), (58, 28)]
    _eyes(pen, eyes)
    return Anchors(head=(50, 30, 18), eyes=eyes, neck=(50, 46, 14), torso=(30, 48, 70, 88))


def _snowman(pen: _Pen, c: RGB) -> Anchors:
    pen.circle(50, 78, 20, c)
    pen.circle(50, 48, 14, c)
    pen.circle(50, 24, 11, c)
    for y in (42, 50, 72, 82):
        pen.circle(50, y, 1.8, INK_RGB, outline=False)
    pen.polygon([(50, 24), (64, 27), (50, 28)], (240, 120, 20))  # carrot nose
    eyes = [(45, 21), (55, 21)]
    for x, y in eyes:
        pen.circle(x, y, 1.8, INK_RGB, outline=False)
    pen.line([(36, 46), (20, 36)], (110, 70, 30), 1.5)  # stick arms
    pen.line([(64, 46), (80, 36)], (110, 70, 30), 1.5)
    return Anchors(head=(50, 24, 11), eyes=eyes, neck=(50, 35, 9), torso=(37, 36, 63, 62))


def _frog(pen: _Pen, c: RGB) -> Anchors:
    pen.ellipse((16, 50, 84, 96), c)
    pen.ellipse((18, 24, 82, 62), c)
    pen.circle(32, 26, 9, c)
    pen.circle(68, 26, 9, c)
    pen.line([(34, 50), (50, 54), (66, 50)], INK_RGB, 1.2)
    eyes = [(32, 25), (68, 25)]
    _eyes(pen, eyes, 4.0)
    return Anchors(head=(50, 40, 22), eyes=eyes, neck=(50, 60, 14), torso=(26, 62, 74, 92))


_SUBJECT_DRAWERS: dict[str, Callable[[_Pen, RGB], Anchors]] = {
    "dinosaur": _dinosaur,
    "cat": _cat,
    "dog": _dog,
    "robot": _robot,
    "bird": _bird,
    "bear": _bear,
    "rabbit": _rabbit,
    "penguin": _penguin,
    "snowman": _snowman,
    "frog": _frog,
}


def _suit(pen: _Pen, a: Anchors) -> None:
    x0, y0, x1, y1 = a.torso
    nx, _, nw = a.neck
    pen.polygon([(x0, y0 + 4), (nx - nw, y0), (nx + nw, y0), (x1, y0 + 4), (x1, y1), (x0, y1)], SUIT_RGB)
    depth = (y1 - y0) * 0.6
    pen.polygon([(nx - nw * 0.8, y0), (nx + nw * 0.8, y0), (nx, y0 + depth)], (250, 250, 250), outline=False)
    pen.polygon(  # tie: knot and blade
        [(nx - 2, y0), (nx + 2, y0), (nx + 3, y0 + depth * 0.8), (nx, y0 + depth), (nx - 3, y0 + depth * 0.8)],
        TIE_RGB,
        outline=False,
    )
    for sign in (-1, 1):  # lapels
        pen.line([(nx + sign * nw * 0.8, y0), (nx + sign * 2, y0 + depth)], (90, 90, 110), 0.8)


def _hat(pen: _Pen, a: Anchors) -> None:
    hx, hy, r = a.head
    top = hy - r
    pen.rect((hx - r * 1.1, top - 3, hx + r * 1.1, top + 3), INK_RGB)
    pen.rect((hx - r * 0.7, top - r * 1.35, hx + r * 0.7, top - 1), INK_RGB)
    pen.rect((hx - r * 0.7, top - 9, hx + r * 0.7, top - 4), (170, 30, 40), outline=False)


def _crown(pen: _Pen, a: Anchors) -> None:
    hx, hy, r = a.head
    base = hy - r * 0.7
    w = r * 1.05
    h = r * 1.05
    points = [(hx - w, base), (hx - w, base - h), (hx - w / 2, base - h / 2), (hx, base - h * 1.15)]
    points += [(hx + w / 2, base - h / 2), (hx + w, base - h), (hx + w, base)]
    pen.polygon(points, GOLD_RGB)
    pen.circle(hx, base - h * 0.35, r * 0.18, (220, 30, 60), outline=False)


def _sunglasses(pen: _Pen, a: Anchors) -> None:
    r = a.head[2] * 0.36
    for x, y in a.eyes:
        pen.ellipse((x - r * 1.3, y - r, x + r * 1.3, y + r), INK_RGB, outline=False)
    if len(a.eyes) == 2:
        (xa, ya), (xb, yb) = a.eyes
        pen.line([(xa, ya), (xb, yb)], INK_RGB, 2.4)
    else:  # a profile head shows one lens and the arm going back
        x, y = a.eyes[0]
        pen.line([(x, y), (x - a.head[2], y)], INK_RGB, 2.4)


def _scarf(pen: _Pen, a: Anchors) -> None:
    nx, ny, nw = a.neck
    band = [(nx - nw - 3, ny - 5), (nx + nw + 3, ny - 5), (nx + nw + 3, ny + 5), (nx - nw - 3, ny + 5)]
    pen.polygon(band, (220, 30, 30))
    pen.polygon([(nx, ny), (nx + 10, ny), (nx + 13, ny + 24), (nx + 3, ny + 24)], (220, 30, 30))
    for i in range(3):  # white stripes across the hanging end
        y = ny + 9 + i * 5
        pen.line([(nx + 2, y), (nx + 11, y)], (250, 250, 250), 2.0)


_OUTFIT_DRAWERS: dict[str, Callable[[_Pen, Anchors], None]] = {
    "suit": _suit,
    "hat": _hat,
    "crown": _crown,
    "sunglasses": _sunglasses,
    "scarf": _scarf,
}


def _background(draw: ImageDraw.ImageDraw, kind: str, size: int, rng: random.Random) -> None:
    s = size
    horizon = int(s * rng.uniform(0.55, 0.68))
    if kind == "meadow":
        draw.rectangle([0, 0, s, horizon], fill=(150, 200, 245))
        draw.rectangle([0, horizon, s, s], fill=(95, 175, 75))
        for _ in range(8):
            x, y = rng.uniform(0, s), rng.uniform(horizon + 4, s)
            draw.line([(x, y), (x + 2, y - 6)], fill=(60, 130, 50), width=2)
    elif kind == "beach":
        draw.rectangle([0, 0, s, horizon], fill=(160, 215, 250))
        draw.rectangle([0, horizon - s * 0.12, s, horizon], fill=(40, 120, 200))
        draw.rectangle([0, horizon, s, s], fill=(235, 210, 150))
        sx = rng.uniform(0.1, 0.9) * s
        draw.ellipse([sx - 8, 6, sx + 8, 22], fill=(255, 225, 80))
    elif kind == "night":
        draw.rectangle([0, 0, s, horizon], fill=(18, 22, 60))
        draw.rectangle([0, horizon, s, s], fill=(45, 50, 75))
        for _ in range(14):
            x, y = rng.uniform(0, s), rng.uniform(0, horizon - 4)
            draw.rectangle([x, y, x + 1.5, y + 1.5], fill=(255, 255, 230))
        mx = rng.uniform(0.1, 0.9) * s
        draw.ellipse([mx - 7, 6, mx + 7, 20], fill=(245, 240, 200))
    elif kind == "snow":
        draw.rectangle([0, 0, s, horizon], fill=(200, 210, 225))
        draw.rectangle([0, horizon, s, s], fill=(250, 250, 255))
        for _ in range(16):
            x, y = rng.uniform(0, s), rng.uniform(0, s)
            draw.ellipse([x, y, x + 2.5, y + 2.5], fill=(255, 255, 255))
    elif kind == "room":
        draw.rectangle([0, 0, s, horizon], fill=(235, 220, 190))
        draw.rectangle([0, horizon, s, s], fill=(150, 100, 60))
        wx = rng.uniform(0.1, 0.6) * s
        draw.rectangle([wx, s * 0.1, wx + s * 0.3, s * 0.35], fill=(170, 215, 245), outline=(110, 80, 50), width=2)
    else:
        raise ValueError(f"unknown background {kind!r}; expected one of {', '.join(BACKGROUNDS)}")


def render(scene: Scene, image_size: int = 64, seed: int = 0) -> Image.Image:
    """Draw one scene as an RGB image of `image_size` x `image_size` pixels.

    `seed` only moves the small details (horizon height, stars, jitter) so the
    same scene can be drawn many ways. The attributes stay exact.
    """
    rng = random.Random(seed)
    canvas_size = image_size * 2
    canvas = Image.new("RGB", (canvas_size, canvas_size))
    _background(ImageDraw.Draw(canvas), scene.background, canvas_size, rng)

    # Subject and outfit on a transparent layer in the 100x100 frame.
    fraction = rng.uniform(0.56, 0.62) if scene.size == "small" else rng.uniform(0.74, 0.82)
    layer_size = int(canvas_size * fraction)
    layer = Image.new("RGBA", (layer_size, layer_size), (0, 0, 0, 0))
    fill = COLOUR_RGB[scene.colour]
    pen = _Pen(ImageDraw.Draw(layer), layer_size / 100.0, _shade(fill, 0.35))
    anchors = _SUBJECT_DRAWERS[scene.subject](pen, fill)
    if scene.outfit != "none":
        _OUTFIT_DRAWERS[scene.outfit](pen, anchors)
    if scene.facing == "left":
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    # Place the layer: horizontal third from `position`, standing near the bottom.
    centre_x = {"left": 0.22, "center": 0.5, "right": 0.78}[scene.position] * canvas_size
    centre_x += rng.uniform(-0.04, 0.04) * canvas_size
    x = int(min(max(centre_x - layer_size / 2, 0), canvas_size - layer_size))
    y = int(canvas_size - layer_size - rng.uniform(0.02, 0.08) * canvas_size)
    canvas.paste(layer, (x, y), layer)
    return canvas.resize((image_size, image_size), Image.Resampling.LANCZOS)


def is_held_out(scene: Scene) -> bool:
    return scene.combination() in HELD_OUT


def random_scene(rng: random.Random, include_held_out: bool = False) -> Scene:
    """Draw attributes uniformly, skipping held-out combinations unless asked for."""
    while True:
        scene = Scene(
            subject=rng.choice(SUBJECTS),
            colour=rng.choice(COLOURS),
            outfit=rng.choice(OUTFITS),
            background=rng.choice(BACKGROUNDS),
            position=rng.choice(POSITIONS),
            size=rng.choice(SIZES),
            facing=rng.choice(FACINGS),
        )
        if include_held_out or not is_held_out(scene):
            return scene


def write_dataset(
    out: str | os.PathLike[str],
    count: int,
    seed: int = 0,
    image_size: int = 64,
    captions_per_image: int = 4,
    include_held_out: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[Scene]:
    """Write `count` scenes as `NNNNNN.png` + `NNNNNN.txt` into `out`, plus `attributes.jsonl`.

    Each text file contains `captions_per_image` captions, half English and half
    Chinese, one per line. attributes.jsonl has one JSON object per image with
    its file name and ground-truth attributes.
    """
    from .captions import chinese_caption, english_caption

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    scenes = []
    with open(folder / "attributes.jsonl", "w", encoding="utf-8") as attributes:
        for i in range(count):
            scene = random_scene(rng, include_held_out=include_held_out)
            name = f"{i:06d}"
            render(scene, image_size, seed=rng.randrange(1 << 31)).save(folder / f"{name}.png")
            lines = [
                english_caption(scene, rng) if j % 2 == 0 else chinese_caption(scene, rng)
                for j in range(captions_per_image)
            ]
            (folder / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
            attributes.write(json.dumps({"image": f"{name}.png", **scene.to_dict()}) + "\n")
            scenes.append(scene)
            if progress is not None:
                progress(i + 1, count)
    return scenes
