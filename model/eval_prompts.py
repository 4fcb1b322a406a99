"""The fixed, seeded prompt set of `dalle eval`.

Each prompt records the language it is written in, whether its (subject,
colour, outfit) combination is held out of training, and the attributes that
its words state. Only stated attributes are scored. A prompt without outfit
words states no outfit, because "red cat" does not ask for a bare cat.

The wording follows the caption templates of captions.py, so the prompts are
phrased like the training captions while the attribute values are controlled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .captions import (
    BACKGROUND_EN,
    BACKGROUND_ZH,
    COLOUR_EN,
    COLOUR_ZH,
    OUTFIT_EN,
    OUTFIT_ZH,
    POSITION_EN,
    POSITION_ZH,
    SIZE_EN,
    SIZE_ZH,
    SUBJECT_EN,
    SUBJECT_ZH,
)
from .errors import ConfigError
from .toyworld import BACKGROUNDS, COLOURS, HELD_OUT, OUTFITS, POSITIONS, SIZES, SUBJECTS

LANGUAGES = ("en", "zh")

# Extra attributes each template states beyond subject, colour and outfit.
TEMPLATES_EN: tuple[tuple[str, ...], ...] = ((), ("background",), ("size", "position"), ("background", "position"))
TEMPLATES_ZH: tuple[tuple[str, ...], ...] = ((), ("background",), ("size", "position"))

# The held-out part of the set has rounds of one prompt per held-out combination
# and language, as many rounds as fit in a quarter of the set, and at least one.
HELD_OUT_PER_ROUND = len(HELD_OUT) * len(LANGUAGES)
# With this many prompts the seen part alone names every subject and colour.
MIN_PROMPTS = HELD_OUT_PER_ROUND + max(len(SUBJECTS), len(COLOURS))


@dataclass
class EvalPrompt:
    """One prompt of the set, with the attribute values its words ask for."""

    text: str
    language: str  # "en" or "zh"
    held_out: bool
    expected: dict[str, str] = field(default_factory=dict)  # attribute name -> label, stated attributes only


class _Cycle:
    """Seeded round-robin over a tuple, reshuffled each round, so every value comes up once per round."""

    def __init__(self, values: tuple[str, ...], rng: random.Random) -> None:
        self.values = values
        self.rng = rng
        self.pending: list[str] = []

    def next(self) -> str:
        if not self.pending:
            self.pending = list(self.values)
            self.rng.shuffle(self.pending)
        return self.pending.pop()


def _article(words: str) -> str:
    return "an" if words[0] in "aeiou" else "a"


def _english(expected: dict[str, str], rng: random.Random) -> str:
    colour = rng.choice(COLOUR_EN[expected["colour"]])
    subject = rng.choice(SUBJECT_EN[expected["subject"]])
    outfit = rng.choice(OUTFIT_EN[expected.get("outfit", "none")])
    core = f"{colour} {subject} {outfit}".strip()
    if "size" in expected:
        sized = f"{rng.choice(SIZE_EN[expected['size']])} {core}"
        return f"{_article(sized)} {sized} {rng.choice(POSITION_EN[expected['position']])}"
    if "position" in expected:
        background = rng.choice(BACKGROUND_EN[expected["background"]])
        return f"{_article(core)} {core} {background}, {rng.choice(POSITION_EN[expected['position']])}"
    if "background" in expected:
        return f"{_article(core)} {core} {rng.choice(BACKGROUND_EN[expected['background']])}"
    return f"{_article(core)} {core}"


def _chinese(expected: dict[str, str], rng: random.Random) -> str:
    colour = rng.choice(COLOUR_ZH[expected["colour"]])
    subject = rng.choice(SUBJECT_ZH[expected["subject"]])
    outfit = rng.choice(OUTFIT_ZH[expected.get("outfit", "none")])
    described = f"{outfit}的{colour}{subject}" if outfit else f"{colour}的{subject}"
    if "size" in expected:
        position = rng.choice(POSITION_ZH[expected["position"]])
        return f"{position}有一个{rng.choice(SIZE_ZH[expected['size']])}{described}"
    if "background" in expected:
        return f"{rng.choice(BACKGROUND_ZH[expected['background']])}的一个{described}"
    return f"一个{described}"


class _PromptWriter:
    """Choose the attributes of each prompt from per-attribute cycles and write its text."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.cycles = {
            "background": _Cycle(BACKGROUNDS, rng),
            "position": _Cycle(POSITIONS, rng),
            "size": _Cycle(SIZES, rng),
        }
        self.templates = {"en": _Cycle(tuple(map(str, range(len(TEMPLATES_EN)))), rng)}
        self.templates["zh"] = _Cycle(tuple(map(str, range(len(TEMPLATES_ZH)))), rng)

    def write(self, combination: tuple[str, str, str], language: str, held_out: bool) -> EvalPrompt:
        subject, colour, outfit = combination
        expected = {"subject": subject, "colour": colour}
        if outfit != "none":
            expected["outfit"] = outfit
        templates = TEMPLATES_EN if language == "en" else TEMPLATES_ZH
        for name in templates[int(self.templates[language].next())]:
            expected[name] = self.cycles[name].next()
        text = _english(expected, self.rng) if language == "en" else _chinese(expected, self.rng)
        return EvalPrompt(text=text, language=language, held_out=held_out, expected=expected)


def check_prompt_count(count: int) -> None:
    """Raise ConfigError when `count` prompts are too few to cover every attribute value and both languages."""
    if count < MIN_PROMPTS:
        raise ConfigError(
            f"invalid prompt count {count}: at least {MIN_PROMPTS} are needed to cover every held-out "
            f"combination in both languages and every subject and colour; pass --prompts {MIN_PROMPTS} or more"
        )


def build_prompt_set(count: int, seed: int = 0) -> list[EvalPrompt]:
    """Write `count` prompts: every held-out combination in both languages, then seen combinations.

    The same count and seed always give the same prompts. The seen part
    alternates English and Chinese, and cycles through every subject, colour
    and outfit (outfit "none" included) once per round.
    """
    check_prompt_count(count)
    rng = random.Random(f"eval-prompts-{seed}")
    writer = _PromptWriter(rng)
    rounds = max(1, count // 4 // HELD_OUT_PER_ROUND)
    prompts = [
        writer.write(combination, language, held_out=True)
        for _ in range(rounds)
        for combination in HELD_OUT
        for language in LANGUAGES
    ]

    subjects, colours, outfits = _Cycle(SUBJECTS, rng), _Cycle(COLOURS, rng), _Cycle(OUTFITS, rng)
    while len(prompts) < count:
        language = LANGUAGES[len(prompts) % 2]
        combination = (subjects.next(), colours.next(), outfits.next())
        while combination in HELD_OUT:  # draw another outfit for a held-out combination
            combination = (combination[0], combination[1], outfits.next())
        prompts.append(writer.write(combination, language, held_out=False))
    return prompts
