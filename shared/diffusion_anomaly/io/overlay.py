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
    return save_panel_rows_png(path, [(None, panels, contours)], cmaps, vranges, title=title)


def save_panel_rows_png(
    path: str | os.PathLike,
    rows: Sequence[tuple[str | None, Sequence[tuple[str, np.ndarray]], Sequence[tuple[str, np.ndarray]]]],
    cmaps: Sequence[str] | None = None,
    vranges: Sequence[tuple[float, float] | None] | None = None,
    colorbar: str | None = None,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Rows of 2-D panels, each row ``(row title, panels, contours)`` as in :func:`save_panels_png`.

    Panel ``i`` of every row uses ``cmaps[i]`` and ``vranges[i]``, so rows are comparable. ``colorbar`` (its
    label) adds one colour bar for the last column, shared by all rows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = max(len(panels) for _, panels, _ in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(3.2 * n + (0.9 if colorbar else 0), 3.4 * len(rows) + 0.5),
                             squeeze=False)
    image = None
    legend: dict[str, str] = {}
    for r, (row_title, panels, contours) in enumerate(rows):
        for i, (ax, (name, arr)) in enumerate(zip(axes[r], panels)):
            cmap = cmaps[i] if cmaps else ("gray" if i == 0 else "inferno")
            vrange = vranges[i] if vranges else None
            vmin, vmax = vrange if vrange is not None else (None, None)
            shown = ax.imshow(np.asarray(arr, dtype=np.float32).T, cmap=cmap, origin="lower", vmin=vmin,
                              vmax=vmax, interpolation="nearest")
            if i == len(panels) - 1:
                image = shown
            for (contour_name, mask), colour in zip(contours, CONTOUR_COLOURS):
                legend[contour_name] = colour
                m = np.asarray(mask, dtype=np.float32).T
                if m.max() > 0:
                    ax.contour(m, levels=[0.5], colors=colour, linewidths=1.0)
            ax.set_title(name if not row_title else f"{name}\n{row_title}", fontsize=9)
            ax.axis("off")
        for ax in axes[r][len(panels):]:
            ax.axis("off")
    if colorbar and image is not None:
        bar = fig.colorbar(image, ax=list(axes[:, n - 1]), fraction=0.05, pad=0.02)
        bar.set_label(colorbar, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if legend:
        handles = [Line2D([0], [0], color=c, lw=1.5) for c in legend.values()]
        fig.legend(handles, list(legend), loc="lower center", ncol=len(legend), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
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
