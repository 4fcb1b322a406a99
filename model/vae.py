"""Discrete VAE: images to a grid of codebook tokens and back.

Two quantizers share one encoder and decoder:
- "gumbel", as in DALL-E: the encoder emits logits over K codebook entries per
  grid cell, training mixes the entries with a gumbel-softmax whose temperature
  is annealed, and a KL term pulls the code distribution towards uniform.
- "vq_ema", as in VQ-VAE: the encoder emits a vector per cell, the nearest
  codebook entry replaces it, the codebook follows encoder outputs by an
  exponential moving average, and unused entries are restarted from the batch.

Shapes: B batch, C channels, H x W pixels, h x w grid cells, K codebook size,
D codebook width. Pixels are scaled to [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import VAEConfig


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class Encoder(nn.Module):
    """Each level halves the resolution with a strided conv, then refines with residual blocks."""

    def __init__(self, config: VAEConfig, out_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for width in config.hidden_dims:
            layers.append(nn.Conv2d(in_channels, width, 4, stride=2, padding=1))
            layers.extend(ResBlock(width) for _ in range(config.num_res_blocks))
            in_channels = width
        layers.append(nn.SiLU())
        layers.append(nn.Conv2d(in_channels, out_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class Decoder(nn.Module):
    """Per level: residual blocks, then a transposed conv that doubles the resolution.

    The widths mirror the encoder unless the config sets decoder_dims or decoder_res_blocks.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths = list(config.decoder_widths)
        layers: list[nn.Module] = [nn.Conv2d(config.codebook_dim, widths[0], 3, padding=1)]
        for i, width in enumerate(widths):
            out_width = widths[i + 1] if i + 1 < len(widths) else widths[-1]
            layers.extend(ResBlock(width) for _ in range(config.decoder_blocks))
            layers.append(nn.SiLU())
            layers.append(nn.ConvTranspose2d(width, out_width, 4, stride=2, padding=1))
        layers.append(nn.SiLU())
        layers.append(nn.Conv2d(widths[-1], 3, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@dataclass
class VAEOutput:
    reconstruction: torch.Tensor  # (B, 3, H, W)
    loss: torch.Tensor  # total training loss
    recon_loss: torch.Tensor  # mean squared error on [-1, 1] pixels
    aux_loss: torch.Tensor  # KL (gumbel) or commitment (vq_ema) term, before weighting
    perplexity: torch.Tensor  # exp(entropy) of codebook usage in this batch


def _perplexity(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    counts = torch.bincount(codes.flatten(), minlength=codebook_size).float()
    probs = counts / counts.sum()
    return torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())


class DiscreteVAE(nn.Module):
    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        k, d = config.codebook_size, config.codebook_dim
        if config.quantizer == "gumbel":
            self.encoder = Encoder(config, out_channels=k)
            self.codebook = nn.Embedding(k, d)
        else:
            self.encoder = Encoder(config, out_channels=d)
            # The codebook is not trained by gradients: it is the EMA of the encoder
            # outputs assigned to each entry, embed_sum / cluster_size.
            codebook = torch.randn(k, d)
            self.register_buffer("codebook_weight", codebook)
            self.register_buffer("cluster_size", torch.ones(k))
            self.register_buffer("embed_sum", codebook.clone())
            # 0 until the first training batch replaces the random codebook with encoder outputs.
            self.register_buffer("initialized", torch.zeros((), dtype=torch.float32))
        self.decoder = Decoder(config)

    # Codebook lookup, shared by both quantizers.
    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Look up codes (B, h, w) and return embeddings (B, D, h, w)."""
        weight = self.codebook.weight if self.config.quantizer == "gumbel" else self.codebook_weight
        return F.embedding(codes, weight).permute(0, 3, 1, 2)

    def _nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook entry for each cell of z_e (B, D, h, w)."""
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])  # (B*h*w, D)
        weight = self.codebook_weight
        distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ weight.t() + weight.pow(2).sum(1)[None, :]
        return distances.argmin(dim=1).view(z_e.shape[0], z_e.shape[2], z_e.shape[3])

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encode images (B, 3, H, W) in [-1, 1] into codes (B, h, w)."""
        hidden = self.encoder(images)
        if self.config.quantizer == "gumbel":
            return hidden.argmax(dim=1)
        return self._nearest(hidden)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode codes (B, h, w) into images (B, 3, H, W), clamped to [-1, 1]."""
        return self.decoder(self.embed(codes)).clamp(-1.0, 1.0)

    def forward(self, images: torch.Tensor, tau: float = 1.0) -> VAEOutput:
        """Run a training pass; `tau` is the gumbel-softmax temperature (ignored by vq_ema)."""
        hidden = self.encoder(images)
        # The quantizer runs in float32 even under bfloat16 autocast: with 8 significant
        # bits, bfloat16 distances can pick another nearest entry and EMA sums drift.
        with torch.autocast(images.device.type, enabled=False):
            if self.config.quantizer == "gumbel":
                z, aux, codes = self._gumbel(hidden.float(), tau)
                aux_weight = self.config.kl_weight
            else:
                z, aux, codes = self._vq_ema(hidden.float())
                aux_weight = self.config.commitment_weight
        reconstruction = self.decoder(z).float()
        mse = F.mse_loss(reconstruction, images)
        recon_loss = F.l1_loss(reconstruction, images) if self.config.recon_loss == "l1" else mse
        return VAEOutput(
            reconstruction=reconstruction,
            loss=recon_loss + aux_weight * aux,
            recon_loss=mse,
            aux_loss=aux,
            perplexity=_perplexity(codes, self.config.codebook_size),
        )

    def _gumbel(self, logits: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        soft_one_hot = F.gumbel_softmax(logits, tau=tau, hard=False, dim=1)  # (B, K, h, w)
        z = torch.einsum("bkhw,kd->bdhw", soft_one_hot, self.codebook.weight)
        # KL(q || uniform) = sum q log q + log K, averaged over cells.
        log_q = F.log_softmax(logits, dim=1)
        kl = (log_q.exp() * log_q).sum(dim=1).mean() + math.log(self.config.codebook_size)
        return z, kl, logits.argmax(dim=1)

    def _vq_ema(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        codes = self._nearest(z_e)
        z_q = self.embed(codes)
        if self.training:
            self._update_codebook(z_e.detach(), codes)
        commitment = F.mse_loss(z_e, z_q.detach())
        z = z_e + (z_q - z_e).detach()  # straight-through: decoder gradients flow to the encoder
        return z, commitment, codes

    @torch.no_grad()
    def _update_codebook(self, z_e: torch.Tensor, codes: torch.Tensor) -> None:
        k = self.config.codebook_size
        decay = self.config.ema_decay
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])  # (N, D)
        if not bool(self.initialized):
            # Start from encoder outputs: a random codebook far from them would leave most entries unused.
            picks = flat[torch.randint(0, flat.shape[0], (k,), device=flat.device)]
            self.codebook_weight.copy_(picks)
            self.embed_sum.copy_(picks)
            self.cluster_size.fill_(1.0)
            self.initialized.fill_(1.0)
            codes = self._nearest(z_e)
        one_hot = F.one_hot(codes.flatten(), k).type(flat.dtype)  # (N, K)
        self.cluster_size.mul_(decay).add_(one_hot.sum(0), alpha=1 - decay)
        self.embed_sum.mul_(decay).add_(one_hot.t() @ flat, alpha=1 - decay)

        # Laplace smoothing keeps rarely used entries from dividing by zero.
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (total + k * 1e-5) * total
        self.codebook_weight.copy_(self.embed_sum / smoothed[:, None])

        # Restart entries whose EMA usage is nearly zero from random encoder outputs,
        # so the whole codebook stays in play.
        dead = self.cluster_size < 0.2
        n_dead = int(dead.sum())
        if n_dead:
            picks = flat[torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)]
            self.codebook_weight[dead] = picks
            self.embed_sum[dead] = picks
            self.cluster_size[dead] = 1.0


def tau_at(config: VAEConfig, step: int, total_steps: int) -> float:
    """Gumbel temperature at `step`: exponential decay from tau_start to tau_end over training."""
    progress = min(1.0, step / max(1, total_steps - 1))
    return config.tau_start * (config.tau_end / config.tau_start) ** progress
