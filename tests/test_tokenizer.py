import logging

import pytest
from dalle.model.errors import PromptError
from dalle.model.tokenizer import BOS_ID, PAD_ID, CaptionTokenizer, words
from dalle.model.train import build_tokenizer

from .conftest import tiny_captions


@pytest.fixture(scope="module")
def tokenizer() -> CaptionTokenizer:
    return build_tokenizer(tiny_captions(400), text_len=24, vocab_size=500)


@pytest.mark.parametrize("prompt", ["orange dinosaur in a suit", "一个穿着西服的橙色恐龙"])
def test_round_trip(tokenizer, prompt):
    encoded = tokenizer.encode(prompt)
    assert len(encoded.ids) == 24
    assert encoded.ids[0] == BOS_ID
    assert tokenizer.decode(encoded.ids) == prompt


def test_normalises_case_and_width(tokenizer):
    assert tokenizer.encode("ORANGE Dinosaur").ids == tokenizer.encode("orange dinosaur").ids
    assert tokenizer.encode("ｏｒａｎｇｅ").ids == tokenizer.encode("orange").ids  # NFKC folds full-width letters


def test_emoji_has_an_encoding(tokenizer):
    encoded = tokenizer.encode("🦖 in a suit")
    assert tokenizer.decode(encoded.ids) == "🦖 in a suit"


def test_truncation_warns_with_limit(tokenizer, caplog):
    long_prompt = " ".join(["orange dinosaur in a suit"] * 20)
    with caplog.at_level(logging.WARNING, logger="dalle"):
        encoded = tokenizer.encode(long_prompt)
    assert encoded.truncated
    assert len(encoded.ids) == 24
    assert PAD_ID not in encoded.ids
    assert "limit of 23 tokens" in caplog.text


def test_unseen_words_are_named(tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger="dalle"):
        encoded = tokenizer.encode("orange zebra in a suit")
    assert encoded.unseen_words == ["zebra"]
    assert "zebra" in caplog.text


def test_unseen_chinese_characters_are_named(tokenizer):
    assert tokenizer.encode("橙色的斑马").unseen_words == ["斑", "马"]


def test_empty_prompt_rejected(tokenizer):
    with pytest.raises(PromptError, match="empty"):
        tokenizer.encode("   ")


def test_words_split_latin_and_cjk():
    assert words("Orange DINO 穿西服") == ["orange", "dino", "穿", "西", "服"]
