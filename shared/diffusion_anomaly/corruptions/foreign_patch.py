"""Foreign-patch texture source: patches cut from *other* healthy images, kept in a cache fed by the batches."""

from __future__ import annotations

import torch

from .shapes import _randint


class ForeignPatchCache:
    """Up to ``capacity`` patches of ``box`` x ``box``, each tagged with the image it came from.

    ``push`` cuts random crops from the foreground bounding box of each image of a batch; ``pop`` removes and
    returns a random patch whose source differs from the requesting image, so a foreign patch never comes
    from the image it is pasted into.
    """

    def __init__(self, box: int = 64, capacity: int = 512):
        self.box, self.capacity = box, capacity
        self.patches: list[torch.Tensor] = []
        self.sources: list[str] = []

    def __len__(self) -> int:
        return len(self.patches)

    def push(self, images: torch.Tensor, sources: list[str], g: torch.Generator, per_image: int = 2) -> None:
        """Add ``per_image`` crops of every image (B, C, H, W); the oldest patches drop out past capacity."""
        for image, source in zip(images, sources):
            fg = torch.nonzero(image.detach().abs().sum(0) > 0)
            if len(fg) == 0:
                continue
            (y0, x0), (y1, x1) = fg.min(0).values.tolist(), (fg.max(0).values + 1).tolist()
            region = image[:, y0:y1, x0:x1]
            pad_y, pad_x = max(0, self.box - region.shape[1]), max(0, self.box - region.shape[2])
            if pad_y or pad_x:
                region = torch.nn.functional.pad(region, (0, pad_x, 0, pad_y))
            for _ in range(per_image):
                oy = _randint(0, region.shape[1] - self.box, g)
                ox = _randint(0, region.shape[2] - self.box, g)
                self.patches.append(region[:, oy : oy + self.box, ox : ox + self.box].detach().clone())
                self.sources.append(source)
        overflow = len(self.patches) - self.capacity
        if overflow > 0:
            del self.patches[:overflow], self.sources[:overflow]

    def pop(self, source: str, g: torch.Generator) -> torch.Tensor | None:
        """A random patch from another image, removed from the cache; None if there is none."""
        eligible = [i for i, s in enumerate(self.sources) if s != source]
        if not eligible:
            return None
        i = eligible[_randint(0, len(eligible) - 1, g)]
        self.sources.pop(i)
        return self.patches.pop(i)


def minmax_match(patch: torch.Tensor, host: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Map the patch's min/max inside ``mask`` onto the host's min/max inside ``mask``; clip to [0, 1]."""
    inside = mask > 0
    if not inside.any():
        return patch
    p, h = patch[inside], host[inside]
    scaled = (patch - p.min()) / (p.max() - p.min() + 1e-3) * (h.max() - h.min()) + h.min()
    return scaled.clamp(0, 1)
