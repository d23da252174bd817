"""DISYRE's corruption-strength schedule (cold diffusion with synthetic anomalies instead of noise).

Paper convention (Naval Marimont et al., ISBI 2024): T = 100 steps, DDPM betas linear from 1e-3 to 0.2,
corruption strength ``alpha_t = 1 - sqrt(alphabar_t)`` for t = 1..T and ``alpha_0 = 0`` (the healthy image).
So alpha grows with t: textures are corrupted at small t, whole structures at large t. Forward process with a
shape mask ``m`` and a foreign patch ``x_fp``: ``x_t = (1 - alpha_t m) x_0 + alpha_t m x_fp``.
"""

from __future__ import annotations

import torch


class DisyreScheduler:
    """Schedule, forward corruption and the healing step of DISYRE (API shaped like MONAI's schedulers).

    Args:
        num_train_timesteps: T.
        beta_start: first DDPM beta.
        beta_end: last DDPM beta.
    """

    def __init__(self, num_train_timesteps: int = 100, beta_start: float = 1e-3, beta_end: float = 0.2):
        if num_train_timesteps < 2 or not 0 < beta_start < beta_end < 1:
            raise ValueError("need num_train_timesteps >= 2 and 0 < beta_start < beta_end < 1")
        self.num_train_timesteps = num_train_timesteps
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)  # index t-1 holds alphabar_t
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        # strengths[t] for t = 0..T, strengths[0] = 0
        self.strengths = torch.cat([torch.zeros(1, dtype=torch.float64), 1.0 - self.sqrt_alphas_cumprod])
        self.timesteps = torch.arange(num_train_timesteps, 0, -25)

    def strength(self, timesteps: torch.Tensor | int) -> torch.Tensor:
        """Corruption strength for integer timesteps in 0..T (float32, same shape)."""
        t = torch.as_tensor(timesteps, dtype=torch.long)
        if (t < 0).any() or (t > self.num_train_timesteps).any():
            raise ValueError(f"timesteps must lie in 0..{self.num_train_timesteps}")
        return self.strengths.to(t.device)[t].float()

    def corrupt(self, original: torch.Tensor, foreign: torch.Tensor, mask: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
        """``(1 - alpha_t m) x_0 + alpha_t m x_fp`` per sample (the analogue of ``add_noise``)."""
        return self.blend(original, foreign, mask, self.strength(timesteps))

    @staticmethod
    def blend(original: torch.Tensor, foreign: torch.Tensor, mask: torch.Tensor,
              strengths: torch.Tensor) -> torch.Tensor:
        """Eq. 1 of the ISBI paper at any strength: ``(1 - a m) x_0 + a m x_fp`` with ``a`` per sample."""
        a = torch.as_tensor(strengths).to(device=original.device, dtype=original.dtype)
        a = a.view(-1, *([1] * (original.ndim - 1)))
        return (1 - a * mask) * original + a * mask * foreign

    def timestep_for_strength(self, alpha: float) -> int:
        """The t in 1..T whose corruption strength is closest to ``alpha`` (the v2 ensemble gives levels as
        strengths, which keeps them independent of the direction of the t axis)."""
        if not 0 <= alpha <= 1:
            raise ValueError(f"a corruption strength lies in [0, 1], got {alpha}")
        return int(self.timesteps_for_strengths(torch.tensor([alpha]))[0])

    def timesteps_for_strengths(self, strengths: torch.Tensor) -> torch.Tensor:
        """Per sample, the t in 1..T whose alpha_t is closest to the strength actually applied.

        This is how the v2 code conditions training: strengths are drawn first, then mapped to the nearest
        level (its ``map_alpha_to_timestep``, on its reversed t axis; the same strengths give other t numbers
        there, e.g. our 3, 10, 25, 50 are its 99, 74, 49, 24).
        """
        a = torch.as_tensor(strengths, dtype=torch.float64).flatten().cpu()
        return torch.argmin((self.strengths[1:][None] - a[:, None]).abs(), dim=1) + 1

    def set_timesteps(self, step_size: int = 25) -> torch.Tensor:
        """Healing timesteps of Algorithm 1: T, T - S, T - 2S, ... (all > 0)."""
        if not 1 <= step_size <= self.num_train_timesteps:
            raise ValueError(f"step_size must lie in 1..{self.num_train_timesteps}, got {step_size}")
        self.timesteps = torch.arange(self.num_train_timesteps, 0, -step_size)
        return self.timesteps

    def step(self, predicted_original: torch.Tensor, sample: torch.Tensor, next_timestep: int) -> torch.Tensor:
        """Algorithm 1's re-corruption Q(x0_hat, x_cur, t_next, m=1) = (1 - a) x0_hat + a x_cur."""
        a = float(self.strengths[next_timestep])
        return (1 - a) * predicted_original + a * sample
