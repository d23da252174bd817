"""Small tensor operations shared by corruptions and inferers.

The blurs stay ours rather than MONAI's ``GaussianFilter``/``separable_filtering`` because the references blur
with OpenCV: reflect-101 borders at any kernel size (torch's reflect padding refuses a radius >= the image
side) and OpenCV's fixed small kernels (``opencv_gaussian_kernel``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# cv2.getGaussianKernel(k, sigma <= 0) uses these fixed kernels for k = 1, 3, 5, 7 (OpenCV's small_gaussian_tab)
_OPENCV_SMALL_KERNELS = {
    1: (1.0,),
    3: (0.25, 0.5, 0.25),
    5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
}


def kernel_sigma(kernel_size: int) -> float:
    """OpenCV's sigma for a k x k Gaussian given sigma = 0: 0.3 * ((k - 1) / 2 - 1) + 0.8."""
    return 0.3 * ((kernel_size - 1) / 2 - 1) + 0.8


def gaussian_kernel1d(sigma: float, radius: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised samples of exp(-x^2 / (2 sigma^2)) at x = -radius..radius."""
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def opencv_gaussian_kernel(kernel_size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 1-D kernel of ``cv2.GaussianBlur(x, (k, k), 0)``: OpenCV's fixed table for k <= 7 (k = 3 is
    [0.25, 0.5, 0.25]), else a Gaussian with ``kernel_sigma(k)``."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur kernel size must be a positive odd number, got {kernel_size}")
    if kernel_size in _OPENCV_SMALL_KERNELS:
        return torch.tensor(_OPENCV_SMALL_KERNELS[kernel_size], dtype=dtype)
    return gaussian_kernel1d(kernel_sigma(kernel_size), kernel_size // 2, dtype)


def reflect101_indices(size: int, radius: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Source index of every position -radius..size-1+radius under OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|
    gfedcba), repeated as often as needed."""
    idx = torch.arange(-radius, size + radius, device=device)
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= size, period - idx, idx)


def separable_blur2d(x: torch.Tensor, kernel: torch.Tensor, padding: str = "reflect") -> torch.Tensor:
    """Convolve the last two dims of ``x`` (any leading shape) with the odd 1-D ``kernel`` along each axis.

    Why not MONAI's ``separable_filtering``: its "reflect" padding is torch's, which refuses a kernel radius as
    large as the image (Synomaly's blur kernels, 4 sigma wide, can exceed small slices); OpenCV's reflect-101,
    which the reference uses, is repeated here as often as needed.

    ``padding`` is "reflect" (reflect-101, OpenCV's default border) or "zeros".
    """
    if padding not in ("reflect", "zeros"):
        raise ValueError(f"padding must be 'reflect' or 'zeros', got {padding!r}")
    radius = len(kernel) // 2
    if radius == 0:
        return x * kernel[0].to(x.dtype)
    h, w = x.shape[-2:]
    out = x.reshape(-1, 1, h, w)
    k = kernel.to(dtype=x.dtype, device=x.device)
    for dim, size in ((-1, w), (-2, h)):
        if padding == "reflect":
            out = out.index_select(dim + out.ndim, reflect101_indices(size, radius, x.device))
        else:
            out = F.pad(out, (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius))
        out = F.conv2d(out, k.view(1, 1, 1, -1) if dim == -1 else k.view(1, 1, -1, 1))
    return out.reshape(x.shape)


def gaussian_blur2d(x: torch.Tensor, sigma: float, radius: int, padding: str = "reflect") -> torch.Tensor:
    """Separable Gaussian blur over the last two dims of ``x`` (any leading shape), kernel ``2 * radius + 1``."""
    if sigma <= 0 or radius < 1:
        return x
    return separable_blur2d(x, gaussian_kernel1d(sigma, radius, x.dtype), padding)
