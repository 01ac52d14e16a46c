"""The target image seen through a displacement field (window deformation).

After a pass, the target is resampled so that each template window meets
its match already deformed by the field: ``warped(x) = image(x + u(x))``.
The next pass then looks for what the field missed, a residual near zero
that no shear or rotation inside the window smears.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._grid_field import GridField

# Cubic B-splines: the interpolation PIV codes use for deformation
# (OpenPIV's windef too); lower orders blur particle images.
ORDER = 3


class DeformableTarget:
    """A target image (NaN where data is missing) ready to be resampled.

    The spline coefficients are computed once for every pass. Missing
    pixels are filled with the mean before the prefilter, which would
    otherwise spread a NaN over the whole image, and a map of them is
    resampled alongside, so that every warped pixel that draws on a
    missing one (or on the world beyond the image) is missing too.
    """

    def __init__(self, image: np.ndarray):
        self.shape = image.shape
        missing = ~np.isfinite(image)
        filled = np.where(
            missing, np.nanmean(image) if (~missing).any() else 0.0, image
        )
        self.coefficients = ndimage.spline_filter(
            filled, order=ORDER, mode="mirror"
        )
        self.missing = missing.astype(np.float32) if missing.any() else None
        self.pixels = np.indices(self.shape, dtype=np.float64)

    def warped(self, field: GridField) -> np.ndarray:
        """The target at ``x + field(x)`` for every pixel x: NaN where that
        falls beyond the image or beside a missing pixel."""
        dense = field.dense(self.shape)
        largest = float(np.abs(dense).max())
        moved = np.moveaxis(dense, -1, 0) + self.pixels
        out = ndimage.map_coordinates(
            self.coefficients,
            moved,
            order=ORDER,
            prefilter=False,
            mode="mirror",
        )
        beyond = self._beyond(moved, largest)
        if self.missing is not None:
            touched = ndimage.map_coordinates(
                self.missing, moved, order=1, mode="nearest"
            )
            beyond |= touched > 0
        out[beyond] = np.nan
        return out

    def _beyond(self, moved: np.ndarray, largest: float) -> np.ndarray:
        """Where the sample points `moved` (D, *shape) fall beyond the
        image: only in strips along the edges as wide as the `largest`
        displacement, the only places they can."""
        d = len(self.shape)
        beyond = np.zeros(self.shape, dtype=bool)
        width = int(np.ceil(largest)) + 1
        for k, n in enumerate(self.shape):
            for strip in (slice(0, width), slice(max(n - width, 0), n)):
                where = (slice(None),) * k + (strip,)
                part = moved[(slice(None), *where)]
                last = np.reshape(np.asarray(self.shape) - 1, (d,) + (1,) * d)
                beyond[where] |= np.any((part < 0) | (part > last), axis=0)
        return beyond
