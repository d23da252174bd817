"""PNG figures for people to look at: image panels side by side, with mask contours drawn on top."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_write_bytes

CONTOUR_COLOURS = ("red", "yellow", "cyan", "lime")


def save_panels_png(
    path: str | os.PathLike,
    panels: Sequence[tuple[str, np.ndarray]],
    contours: Sequence[tuple[str, np.ndarray]] = (),
    cmaps: Sequence[str] | None = None,
    title: str | None = None,
    vranges: Sequence[tuple[float, float] | None] | None = None,
) -> Path:
    """Write a row of 2-D panels (x horizontal, y vertical, origin lower-left as in RAS axial views).

    Args:
        panels: ``(name, array)`` per panel; arrays are indexed ``[x, y]``.
        contours: ``(name, mask)`` drawn on every panel, each in its own colour, listed in the legend.
        cmaps: a colormap per panel (default gray for the first, inferno for the rest).
        vranges: ``(vmin, vmax)`` per panel, or None for the panel's own range.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), squeeze=False)
    for i, (ax, (name, arr)) in enumerate(zip(axes[0], panels)):
        cmap = cmaps[i] if cmaps else ("gray" if i == 0 else "inferno")
        vmin, vmax = (vranges[i] if vranges and vranges[i] else (None, None))
        ax.imshow(np.asarray(arr, dtype=np.float32).T, cmap=cmap, origin="lower", vmin=vmin, vmax=vmax,
                  interpolation="nearest")
        for (_, mask), colour in zip(contours, CONTOUR_COLOURS):
            m = np.asarray(mask, dtype=np.float32).T
            if m.max() > 0:
                ax.contour(m, levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if contours:
        handles = [Line2D([0], [0], color=c, lw=1.5) for _, c in zip(contours, CONTOUR_COLOURS)]
        fig.legend(handles, [name for name, _ in contours], loc="lower center", ncol=len(contours), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def save_pr_curve_png(path: str | os.PathLike, recall: np.ndarray, precision: np.ndarray, title: str) -> Path:
    """Precision-recall curve (step plot, as average precision is defined)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall, precision = np.asarray(recall), np.asarray(precision)
    if recall.size > 5000:  # plotting resolution only
        keep = np.unique(np.linspace(0, recall.size - 1, 5000).astype(int))
        recall, precision = recall[keep], precision[keep]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.step(np.concatenate([[0], recall]), np.concatenate([[precision[0]], precision]), where="pre")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
