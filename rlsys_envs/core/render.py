"""Rendering helpers shared by the environments' ``render.py`` files."""
from __future__ import annotations

import numpy as np


def figure_to_rgb(fig) -> np.ndarray:
    """Draw a matplotlib figure and return it as an ``[H, W, 3]`` uint8 array (``rgb_array``
    render mode); the figure is closed so repeated renders do not accumulate open figures."""
    import matplotlib.pyplot as plt

    try:
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    finally:
        plt.close(fig)
