"""Figure plumbing shared by the analysis plots: the Agg pyplot, image panels and PNG saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (the figures only go to files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def show_image(ax, img: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> None:
    """Draw an ``H x W x C`` image with values in ``[lo, hi]``: gray for ``C = 1``, else RGB."""
    if img.shape[2] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=lo, vmax=hi)
    else:
        ax.imshow(np.clip((img - lo) / (hi - lo), 0, 1))


def hide_ticks(ax) -> None:
    """Remove both axes' ticks (image panels)."""
    ax.set_xticks([])
    ax.set_yticks([])


def save_figure(fig, path, dpi: int) -> Path:
    """Lay out ``fig``, write it as a PNG to ``path`` (parent folders created), close it."""
    plt = pyplot()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def class_label(class_names, k: int) -> str:
    """Name of class ``k`` from ``class_names``, or ``str(k)`` without names."""
    return class_names[k] if class_names is not None else str(k)
