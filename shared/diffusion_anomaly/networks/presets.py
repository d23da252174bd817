"""MONAI DiffusionModelUNet presets per method: "paper" (as published) and "demo" (trains on a CPU)."""

from __future__ import annotations

from typing import Any

from monai.networks.nets import DiffusionModelUNet

F, T = False, True
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # DISYRE: diffusers UNet2DModel widths (32, 64, 96, 128, 256, 256), 2 layers per block, attention only in
    # the 5th level and the middle (the released code; the paper says "from the 3rd block"), head dim 8.
    # 26.3 M parameters, the size of the reference network.
    "disyre": {
        "paper": dict(channels=(32, 64, 96, 128, 256, 256), attention_levels=(F, F, F, F, T, F), num_res_blocks=2,
                      num_head_channels=8, norm_num_groups=32),
        "demo": dict(channels=(16, 32, 64, 128), attention_levels=(F, F, F, F), num_res_blocks=1,
                     num_head_channels=32, norm_num_groups=16),
    },
    # Synomaly: guided-diffusion UNet, 128 base channels, multipliers (1, 1, 2, 3, 4), 2 res blocks, resblock
    # up/downsampling, attention at 16x16 and 8x8 (for 128 px inputs) and in the middle, 64 channels per head.
    "synomaly": {
        "paper": dict(channels=(128, 128, 256, 384, 512), attention_levels=(F, F, F, T, T), num_res_blocks=2,
                      resblock_updown=True, num_head_channels=64, norm_num_groups=32),
        "demo": dict(channels=(32, 64, 64, 128), attention_levels=(F, F, F, T), num_res_blocks=1,
                     num_head_channels=32, norm_num_groups=16),
    },
    # AnoFPDM: guided-diffusion UNet, 128 base channels, multipliers (1, 1, 2, 3, 4), 2 res blocks, attention at
    # downsampling 4, 8 and 16 with 4 heads (the code; the paper's table says 2), class embedding added to the
    # time embedding with 3 classes: 0 healthy, 1 unhealthy, 2 the null label of classifier-free guidance.
    # MONAI's UNet has no res-block dropout (the reference uses 0.1): a documented deviation.
    "anofpdm": {
        "paper": dict(channels=(128, 128, 256, 384, 512), attention_levels=(F, F, T, T, T), num_res_blocks=2,
                      num_head_channels=(32, 32, 64, 96, 128), norm_num_groups=32, num_class_embeds=3),
        "demo": dict(channels=(16, 32, 64, 64), attention_levels=(F, F, F, T), num_res_blocks=1,
                     num_head_channels=32, norm_num_groups=16, num_class_embeds=3),
    },
}

HEALTHY, UNHEALTHY, NULL_CLASS = 0, 1, 2


def diffusion_unet(method: str, preset: str = "paper", spatial_dims: int = 2, in_channels: int = 1,
                   out_channels: int = 1, **overrides: Any) -> DiffusionModelUNet:
    """Build the ``preset`` network of ``method``; keyword overrides replace preset values."""
    if method not in PRESETS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(PRESETS)}")
    if preset not in PRESETS[method]:
        raise ValueError(f"unknown preset {preset!r} for {method}; known: {sorted(PRESETS[method])}")
    kwargs = dict(PRESETS[method][preset]) | overrides
    return DiffusionModelUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)
