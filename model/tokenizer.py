"""Caption tokenizer: byte-level BPE trained on the training captions.

The BPE model is trained with the `tokenizers` library (NFKC and lowercase
normalisation, byte-level pre-tokenization, so any UTF-8 text, Chinese and
emoji included, has an encoding) and used through transformers'
`PreTrainedTokenizerFast`. Its JSON form is stored in the checkpoint.

Each encoded prompt is a fixed-length segment: <bos>, the BPE tokens, then
<pad> up to `text_len`.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import PromptError

logger = logging.getLogger(__name__)

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<bos>"
PAD_ID = 0
BOS_ID = 1

# A "word" for the seen-vocabulary check: a run of Latin letters or digits, or a
# single CJK ideograph (Chinese is written without spaces between words).
_WORD_RE = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def words(text: str) -> list[str]:
    """Split text into the units the unseen-word warning checks."""
    return _WORD_RE.findall(normalize(text))


def train_tokenizer(captions: Iterable[str], vocab_size: int = 1024) -> str:
    """Train a byte-level BPE on `captions` and return the tokenizer as a JSON string."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, BOS_TOKEN],  # ids 0 and 1, in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(captions, trainer=trainer)
    return tokenizer.to_str()


@dataclass
class EncodedPrompt:
    ids: list[int]  # length text_len: bos, tokens, pads
    truncated: bool
    unseen_words: list[str]


class CaptionTokenizer:
    """Fixed-length encoder for prompts, built from a stored tokenizer JSON."""

    def __init__(self, tokenizer_json: str, text_len: int, vocabulary: Iterable[str] = ()) -> None:
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        self.tokenizer_json = tokenizer_json
        self.text_len = text_len
        self.vocabulary = frozenset(vocabulary)
        self.hf = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(tokenizer_json), pad_token=PAD_TOKEN, bos_token=BOS_TOKEN
        )
        if self.hf.pad_token_id != PAD_ID or self.hf.bos_token_id != BOS_ID:
            raise PromptError(
                f"tokenizer has pad id {self.hf.pad_token_id} and bos id {self.hf.bos_token_id}, "
                f"expected {PAD_ID} and {BOS_ID}; retrain it with train_tokenizer()"
            )

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, prompt: str) -> EncodedPrompt:
        """Encode one prompt; warn (through logging) when it is truncated or contains unseen words."""
        if not prompt.strip():
            raise PromptError("prompt is empty; pass some text, for example 'orange dinosaur in a suit'")
        tokens = self.hf(prompt, add_special_tokens=False)["input_ids"]
        limit = self.text_len - 1  # one slot goes to <bos>
        truncated = len(tokens) > limit
        if truncated:
            logger.warning(
                "prompt %r is %d tokens long and was truncated to the model's limit of %d tokens",
                prompt,
                len(tokens),
                limit,
            )
            tokens = tokens[:limit]
        unseen = []
        if self.vocabulary:
            unseen = sorted({w for w in words(prompt) if w not in self.vocabulary})
            if unseen:
                logger.warning("prompt %r has words the model never saw in training: %s", prompt, ", ".join(unseen))
        ids = [BOS_ID, *tokens] + [PAD_ID] * (limit - len(tokens))
        return EncodedPrompt(ids=ids, truncated=truncated, unseen_words=unseen)

    def empty(self) -> list[int]:
        """Return the unconditional text segment for classifier-free guidance: bos, then pads."""
        return [BOS_ID] + [PAD_ID] * (self.text_len - 1)

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode([i for i in ids if i not in (PAD_ID, BOS_ID)])
