"""Decoder-only transformer over a text segment followed by an image token grid.

Sequence layout for one example, with L = text_len and N = grid_size ** 2:

    position  0      1 .. L-1              L                L+1 .. L+N-1
    token     <bos>  caption tokens, pads  start-of-image   image tokens 0 .. N-2

Position L + j predicts image token j, so the last image token is never an
input. The learned start-of-image input means the first image token is never
predicted from a pad position. Text positions predict the next text token over the text vocabulary
only, image positions predict over the image vocabulary only: one output layer
covers both vocabularies and each position reads its own slice, which is the
same as masking the other slice's logits to -inf.

Pad tokens in the text segment are masked out of attention as keys, so the
image never depends on the pad embedding or on how much padding a prompt has. Image tokens get 2-D
positions: a row embedding plus a column embedding.

Shapes: B batch, T sequence length, C = n_embd, nh = n_head, hs = C // nh.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import TransformerConfig


class KVCache:
    """Preallocated keys and values, written in place as tokens are generated.

    Layout: (n_layer, 2, B, nh, T_max, hs), where index 0 of the second axis
    contains keys and index 1 values. `length` is how many positions are filled;
    every row of the batch has the same length because text segments have a
    fixed size.

    `key_bias` (B, 1, 1, T_max) is added to the attention scores of one-token
    steps: 0 for keys a query may see, -inf for text pads. It is built once
    at prefill, so a step slices it instead of building a mask.
    """

    def __init__(self, config: TransformerConfig, batch_size: int, device: torch.device, dtype: torch.dtype) -> None:
        head_size = config.n_embd // config.n_head
        shape = (config.n_layer, 2, batch_size, config.n_head, config.block_size, head_size)
        self.data = torch.zeros(shape, device=device, dtype=dtype)
        self.key_bias = torch.zeros(batch_size, 1, 1, config.block_size, device=device, dtype=dtype)
        self.length = 0

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nh, T_new, hs) after the filled positions; return all keys and values so far."""
        start, end = self.length, self.length + k.shape[2]
        self.data[layer, 0, :, :, start:end] = k
        self.data[layer, 1, :, :, start:end] = v
        return self.data[layer, 0, :, :, :end], self.data[layer, 1, :, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if cache is not None:
            k, v = cache.write(layer, k, v)  # (B, nh, T_past + T, hs)
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache, layer)
        return x + self.mlp(self.ln_2(x))


@dataclass
class TransformerLoss:
    loss: torch.Tensor  # weighted sum of text and image losses
    text_loss: torch.Tensor
    image_loss: torch.Tensor


class DalleTransformer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        self.text_emb = nn.Embedding(config.text_vocab_size, C)
        self.text_pos = nn.Embedding(config.text_len, C)
        self.image_emb = nn.Embedding(config.image_vocab_size, C)
        self.image_row = nn.Embedding(config.grid_size, C)
        self.image_col = nn.Embedding(config.grid_size, C)
        self.image_start = nn.Parameter(torch.zeros(C))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, config.text_vocab_size + config.image_vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, DalleTransformer):
            nn.init.normal_(module.image_start, mean=0.0, std=0.02)

    # Embeddings.
    def embed_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) text ids to (B, L, C)."""
        positions = torch.arange(text_ids.shape[1], device=text_ids.device)
        return self.text_emb(text_ids) + self.text_pos(positions)

    def embed_image(self, image_ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """(B, n) image ids, the first at grid index `start`, to (B, n, C)."""
        index = torch.arange(start, start + image_ids.shape[1], device=image_ids.device)
        grid = self.config.grid_size
        return self.image_emb(image_ids) + self.image_row(index // grid) + self.image_col(index % grid)

    # Logits for each vocabulary: slices of one output layer.
    def text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        V = self.config.text_vocab_size
        return F.linear(hidden, self.lm_head.weight[:V], self.lm_head.bias[:V])

    def image_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        V = self.config.text_vocab_size
        return F.linear(hidden, self.lm_head.weight[V:], self.lm_head.bias[V:])

    def attention_mask(self, text_ids: torch.Tensor, total: int) -> torch.Tensor:
        """Build the boolean mask (B, 1, T, T) for a pass over the first T = `total` positions.

        A query sees keys at or before its own position, except text pads.
        """
        device = text_ids.device
        positions = torch.arange(total, device=device)
        causal = positions[None, :] <= positions[:, None]  # (T, T)
        keep = torch.ones(text_ids.shape[0], total, dtype=torch.bool, device=device)
        text_keys = min(text_ids.shape[1], total)
        keep[:, :text_keys] = text_ids[:, :text_keys] != self.config.pad_token_id
        return causal[None, None, :, :] & keep[:, None, None, :]

    def hidden_states(self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = self.drop(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer)
        if cache is not None:
            cache.length += x.shape[1]
        return self.ln_f(x)

    def forward(self, text_ids: torch.Tensor, image_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Full pass without a cache.

        text_ids (B, L) and image_ids (B, n) with n <= N. Returns text logits
        (B, L-1, V_text) for text tokens 1 .. L-1 and image logits
        (B, n', V_image) for image tokens 0 .. n'-1, where n' = min(n + 1, N).
        """
        L = self.config.text_len
        inputs = image_ids[:, : self.config.image_len - 1]
        x = torch.cat([self.embed_text(text_ids), self._start(text_ids.shape[0]), self.embed_image(inputs)], dim=1)
        mask = self.attention_mask(text_ids, x.shape[1])
        hidden = self.hidden_states(x, mask)  # (B, T, C)
        return self.text_logits(hidden[:, : L - 1]), self.image_logits(hidden[:, L:])

    def _start(self, batch: int) -> torch.Tensor:
        return self.image_start.view(1, 1, -1).expand(batch, 1, -1)  # (B, 1, C)

    def loss(self, text_ids: torch.Tensor, image_ids: torch.Tensor) -> TransformerLoss:
        """Training loss: text weighted text_loss_weight, image the rest; pad targets are ignored."""
        text_logits, image_logits = self(text_ids, image_ids)
        text_targets = text_ids[:, 1:]
        if bool((text_targets != self.config.pad_token_id).any()):
            text_loss = F.cross_entropy(
                text_logits.reshape(-1, text_logits.shape[-1]),
                text_targets.reshape(-1),
                ignore_index=self.config.pad_token_id,
            )
        else:  # every caption in the batch was dropped
            text_loss = text_logits.sum() * 0.0
        image_loss = F.cross_entropy(image_logits.reshape(-1, image_logits.shape[-1]), image_ids.reshape(-1))
        w = self.config.text_loss_weight
        return TransformerLoss(loss=w * text_loss + (1 - w) * image_loss, text_loss=text_loss, image_loss=image_loss)

    # Cached generation: prefill the text, then one image token per step.
    def prefill(self, text_ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Run the text segment and start-of-image into an empty cache; return logits (B, V_image) for token 0."""
        x = torch.cat([self.embed_text(text_ids), self._start(text_ids.shape[0])], dim=1)
        mask = self.attention_mask(text_ids, x.shape[1])
        pads = text_ids == self.config.pad_token_id  # (B, L)
        text_bias = torch.zeros(pads.shape, dtype=cache.key_bias.dtype, device=pads.device)
        cache.key_bias[:, 0, 0, : text_ids.shape[1]] = text_bias.masked_fill(pads, float("-inf"))
        hidden = self.hidden_states(x, mask, cache)
        return self.image_logits(hidden[:, -1])

    def step(self, image_ids: torch.Tensor, index: int, cache: KVCache) -> torch.Tensor:
        """Feed image token `index` (B, 1); return logits (B, V_image) for token index + 1.

        A single query comes after every filled key, so causality needs no mask.
        Only text pads are hidden, through the cache's key bias.
        """
        start = cache.length
        mask = cache.key_bias[..., : start + 1]  # (B, 1, 1, start + 1)
        hidden = self.hidden_states(self.embed_image(image_ids, start=index), mask, cache)
        return self.image_logits(hidden[:, -1])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
