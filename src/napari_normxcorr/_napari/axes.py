"""What the axis in front of (rows, cols) is: time, or depth.

A (t, y, x) time-lapse is matched frame by frame; a (z, y, x) volume is
matched in 3-D, with a radius per axis. napari's axis labels tell them
apart (the layer's own, else the viewer's); the user can say it instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import napari

# The choices of the "first axis" control.
FROM_LABELS = "from axis labels"
TIME = "time"
DEPTH = "z (depth)"
FIRST_AXIS_CHOICES = (FROM_LABELS, TIME, DEPTH)
_TIME_LABELS = {"t", "time", "frame", "frames", "timepoint", "timepoints"}
_DEPTH_LABELS = {"z", "depth", "slice", "slices", "plane", "planes"}


def spatial_ndim(layer: napari.layers.Image | None) -> int:
    """Axes of an image's pixels, without the RGB channel axis."""
    if layer is None:
        return 0
    return int(layer.ndim)


def first_axis_label(viewer: napari.Viewer, layer: napari.layers.Layer) -> str:
    """The label of the axis in front of (rows, cols) of `layer`: its own
    when set, else the viewer's label of that axis."""
    axis = layer.ndim - 3
    own = str(layer.axis_labels[axis])
    if not _is_default(own):
        return own
    labels = viewer.dims.axis_labels
    viewer_axis = len(labels) - 3
    if viewer_axis < 0:
        return own
    label = str(labels[viewer_axis])
    return "" if _is_default(label) else label


def _is_default(label: str) -> bool:
    """napari's unnamed labels: '0', '1', ... or '-3', '-2', ..."""
    return label.lstrip("-").isdigit() or label.startswith("axis ")


def label_kind(label: str) -> str | None:
    """TIME, DEPTH, or None when `label` says neither."""
    name = label.strip().lower()
    if name in _TIME_LABELS:
        return TIME
    if name in _DEPTH_LABELS:
        return DEPTH
    return None


def first_axis_kind(
    viewer: napari.Viewer,
    layer: napari.layers.Image | None,
    choice: str = FROM_LABELS,
    unlabelled: str = DEPTH,
) -> str | None:
    """TIME or DEPTH for an image of 3 or more axes (None: fewer).

    `choice` is the user's (one of FIRST_AXIS_CHOICES); FROM_LABELS reads
    napari's axis labels, and an axis labelled neither way is
    `unlabelled`.
    """
    if spatial_ndim(layer) < 3:
        return None
    if choice != FROM_LABELS:
        return choice
    assert layer is not None
    return label_kind(first_axis_label(viewer, layer)) or unlabelled


def describe(kind: str | None, label: str) -> str:
    """One line saying how the axis is read and what that means."""
    if kind is None:
        return ""
    said = f"labelled '{label}'" if label else "unlabelled"
    if kind == TIME:
        return f"First axis {said}: time, each frame matched on its own."
    note = f"First axis {said}: depth, matched in 3-D (z, rows, cols)."
    if not label:
        note += " Track takes it as time."
    return note
