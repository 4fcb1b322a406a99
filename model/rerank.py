"""Candidate reranking by pointwise mutual information, with no extra model.

The score of a sampled token grid is the transformer's own mean log-likelihood
of its image tokens given the prompt, minus the same given empty text:
    score = mean_j log p(x_j | prompt, x_<j) - mean_j log p(x_j | empty, x_<j)
A high score means the prompt, not the image prior alone, explains the image.
"""

from __future__ import annotations

import torch

from .transformer import DalleTransformer

# Candidate j of an image with seed s uses seed s + j * CANDIDATE_SEED_STRIDE, so candidate 0
# is the image that sampling without reranking draws.
CANDIDATE_SEED_STRIDE = 1_000_003


def candidate_seeds(seed: int, candidates: int) -> list[int]:
    return [seed + j * CANDIDATE_SEED_STRIDE for j in range(candidates)]


@torch.inference_mode()
def mean_log_likelihood(model: DalleTransformer, text_ids: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean log p of the image tokens (B, N) given text segments (B, L), teacher-forced; returns (B,)."""
    _, logits = model(text_ids, tokens)  # (B, N, V_image)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).mean(dim=1)


@torch.inference_mode()
def pmi_scores(
    model: DalleTransformer, text_ids: torch.Tensor, empty_ids: torch.Tensor, tokens: torch.Tensor
) -> torch.Tensor:
    """Score token grids (B, N) for prompts text_ids (B, L); higher is better. Returns (B,)."""
    empty = empty_ids.to(text_ids.device).expand(text_ids.shape[0], -1)
    both = mean_log_likelihood(model, torch.cat([text_ids, empty]), torch.cat([tokens, tokens]))
    conditional, unconditional = both.split(text_ids.shape[0])
    return conditional - unconditional
