"""What the plots share: the axes to draw on, and a colour per job."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def job_colors(job_ids) -> dict:
    """A distinct colour per job: matplotlib's 10-colour cycle for up to 10 jobs, tab20 for up
    to 20, beyond that hues spaced by the golden ratio (neighbours stay far apart)."""
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb

    ids = sorted({int(j) for j in job_ids})
    if len(ids) <= 10:
        return {j: f"C{i}" for i, j in enumerate(ids)}
    if len(ids) <= 20:
        cmap = colormaps["tab20"]
        return {j: cmap(i) for i, j in enumerate(ids)}
    golden = 0.618033988749895
    return {j: tuple(hsv_to_rgb(((i * golden) % 1.0, 0.65 if i % 2 else 0.85,
                                 0.95 if i % 3 else 0.75)))
            for i, j in enumerate(ids)}


def _axes(ax: Axes | None) -> Axes:
    """The given axes, or new ones on a new pyplot figure (which notebooks display)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(8, 4), layout="constrained")[1]


def _new_axes() -> Axes:
    """Axes on a figure that pyplot does not track (for files: no global state, no leaks)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(8, 4), layout="constrained").add_subplot()
