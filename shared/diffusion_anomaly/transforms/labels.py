"""Image-level labels for weakly-supervised training (AnoFPDM): simulated tumours and slice labels."""

from __future__ import annotations

from typing import Mapping

import torch
from monai.transforms import MapTransform, Randomizable

from ..corruptions.tumour import paint_tumour, sample_tumour
from .intensity import like


class RandTumourd(Randomizable, MapTransform):
    """With probability ``prob``, paint a simulated tumour into a 2-D slice and add it to ``label_key``.

    ``image_key`` is a (C, H, W) slice scaled to [0, 1] with background 0; ``mask_key`` (1, H, W) says where the
    brain is. The tumour is also written into ``label_key`` (created if absent), so the image-level label comes
    from the same place as for real lesions (:class:`ImageLabeld`).
    """

    def __init__(self, image_key: str = "image", mask_key: str = "foreground_mask", label_key: str = "label",
                 prob: float = 0.5, radius_range: tuple[float, float] = (0.05, 0.16)):
        MapTransform.__init__(self, [image_key])
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob}")
        self.image_key, self.mask_key, self.label_key = image_key, mask_key, label_key
        self.prob, self.radius_range = prob, (float(radius_range[0]), float(radius_range[1]))

    def randomize(self, data=None) -> None:
        pass

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        image = torch.as_tensor(d[self.image_key]).float()
        brain = torch.as_tensor(d[self.mask_key]) > 0
        label = torch.as_tensor(d[self.label_key]).float() if self.label_key in d else torch.zeros_like(image[:1])
        if self.R.rand() < self.prob:
            params = sample_tumour(brain[0].numpy(), image.shape[0], self.R, self.radius_range)
            if params is not None:
                image, lesion = paint_tumour(image, brain.float(), params)
                label = torch.maximum(label, lesion)
        d[self.image_key] = like(image, d[self.image_key])
        d[self.label_key] = like(label, d[self.label_key]) if self.label_key in data else label
        return d


class ImageLabeld(MapTransform):
    """``output_key`` = 1 if the slice's ``label_key`` mask has any pixel > ``threshold``, else 0 (a long tensor).

    AnoFPDM labels a slice unhealthy when any tumour pixel survives the downsampling (threshold 0.5 after
    bilinear resizing in the reference).
    """

    def __init__(self, label_key: str = "label", output_key: str = "class_label", threshold: float = 0.5):
        super().__init__([label_key])
        self.label_key, self.output_key, self.threshold = label_key, output_key, threshold

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        d[self.output_key] = torch.tensor(int(bool((torch.as_tensor(d[self.label_key]) > self.threshold).any())))
        return d
