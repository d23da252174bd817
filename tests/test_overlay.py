"""Overlays people can read: the hottest slice, the largest-lesion slice, one colour scale, contours."""

import numpy as np
import torch
from PIL import Image

from diffusion_anomaly.transforms import SaveOverlayd
from diffusion_anomaly.transforms.writers import hottest_axial_slice, largest_lesion_slice


def _case():
    brain = np.zeros((40, 44, 12), bool)
    brain[5:35, 6:38, 1:11] = True
    brain[..., 1] = False
    brain[18:22, 20:24, 1] = True  # an edge slice with a sliver of brain
    score = np.zeros(brain.shape, np.float32)
    score[10:13, 10:13, 7] = 1.0  # the map's hot spot
    score[18:22, 20:24, 1] = 5.0  # hotter, but on the sliver: not what a reader looks for
    label = np.zeros(brain.shape, bool)
    label[20:30, 20:30, 4] = True  # the largest lesion
    label[12:14, 12:14, 7] = True
    return score, brain, label


def test_hottest_slice_skips_edge_slivers_and_lesion_slice_is_the_largest():
    score, brain, label = _case()
    assert hottest_axial_slice(score, brain) == 7
    assert hottest_axial_slice(score, brain, min_brain_fraction=0.0) == 1
    assert largest_lesion_slice(label) == 4


def test_overlay_has_two_rows_a_colour_bar_and_is_written_per_case(tmp_path):
    score, brain, label = _case()
    item = {"case": "c1", "image": torch.rand(1, *score.shape), "pred": torch.as_tensor(score)[None],
            "label": torch.as_tensor(label)[None], "foreground_mask": torch.as_tensor(brain)[None],
            "mask": torch.as_tensor(score > 0.5)[None]}
    SaveOverlayd(tmp_path, threshold=0.5)(item)
    two_rows = Image.open(tmp_path / "c1/overlay.png")
    item["label"] = torch.zeros_like(item["label"])  # no lesion: one row
    SaveOverlayd(tmp_path)(item)
    one_row = Image.open(tmp_path / "c1/overlay.png")
    assert abs(two_rows.width - one_row.width) < 0.05 * one_row.width and two_rows.height > 1.6 * one_row.height
    assert two_rows.info.get("dpi", (100, 100))[0] == 100 or two_rows.width > 500
