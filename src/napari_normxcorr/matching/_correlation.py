"""Correlating placed windows: the NCC surfaces of read windows.

Windows of one shape are correlated in stacks. Where many windows search
one plane, their variances come from a variance map of the plane; windows
with pixels without data get a masked NCC, one at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple, cast

import numpy as np

from ..core._arrays import safe_scale
from ..core._kernel import PreparedTemplate, fft_shape, ncc_valid
from ..core._masked import masked_ncc_valid
from ..core._parallel import Workspace
from ..core._variance import MAX_MAP_PIXELS, VarianceMap
from ..core._window_sums import is_flat
from ..core._windows import Window, all_finite

# Maps pay off when the search windows cover their plane this many times.
_MAP_COVERAGE = 1
# The pixels of read windows.
_Arrays = list[np.ndarray]
# Variance maps per (image, plane, template shape) many windows search.
Maps = dict[tuple, VarianceMap]


class Correlator(NamedTuple):
    """How read windows are correlated.

    `ndim` axes are matched, in the transform's precision `fft_dtype`;
    a masked surface is NaN where less than `min_valid` of the template
    overlaps data; `maps` are the variance maps of the searched planes
    (see `variance_maps`).
    """

    ndim: int
    fft_dtype: type[np.floating]
    min_valid: float
    maps: Maps

    def surfaces(
        self,
        windows: list[Window],
        workers: int = -1,
        workspace: Workspace | None = None,
        runs: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """'valid' NCC surfaces of read windows that share their shapes.

        Returns the surfaces and, per window, whether its template is flat.
        The surfaces may live in `workspace`: the next call with it
        overwrites them. Windows with pixels without data get a masked NCC
        (NaN where the overlap is below `min_valid`); the others keep the
        plain path. `runs` numbers the batch each window belongs to: the
        plain windows of a batch take variance maps together or not at
        all, as if each batch were correlated alone (default: one batch).
        """
        runs = [0] * len(windows) if runs is None else runs
        masked = [k for k, w in enumerate(windows) if w.masked]
        batches: dict[int, list[int]] = defaultdict(list)
        for k, w in enumerate(windows):
            if not w.masked:
                batches[runs[k]].append(k)
        paths: dict[bool, list[int]] = {True: [], False: []}
        for members in batches.values():
            mapped = self._mapped([windows[k] for k in members])
            paths[mapped].extend(members)
        if not masked and not (paths[True] and paths[False]):
            return self._plain_surfaces(
                windows, workers, workspace, bool(paths[True])
            )
        template, search = windows[0].shapes
        out_shape = [n - m + 1 for n, m in zip(search, template)]
        # In the plain path's precision: a plain window's results do not
        # depend on whether its batch holds masked windows.
        surfaces = np.empty((len(windows), *out_shape), self.fft_dtype)
        flat = np.zeros(len(windows), dtype=bool)
        for mapped, members in paths.items():
            if members:
                part = [windows[k] for k in members]
                surfaces[members], flat[members] = self._plain_surfaces(
                    part, workers, workspace, mapped
                )
        for k in masked:
            surfaces[k], flat[k] = self._masked_surface(windows[k], workers)
        return surfaces, flat

    def _mapped(self, windows: list[Window]) -> bool:
        """Whether all of these plain windows take their variances from
        maps; a map holds the plane's own values: unscaled windows only."""
        return all(map_key(w) in self.maps and w.scale == 1.0 for w in windows)

    def _masked_surface(
        self, window: Window, workers: int
    ) -> tuple[np.ndarray, bool]:
        """Masked NCC surface of one read window, and whether its template
        is flat over its valid pixels."""
        template, search = window.template, window.search
        assert template is not None and search is not None
        t_valid, s_valid = window.template_valid, window.search_valid
        t_valid = np.isfinite(template) if t_valid is None else t_valid
        s_valid = np.isfinite(search) if s_valid is None else s_valid
        surface = masked_ncc_valid(
            template, t_valid, search, s_valid, self.min_valid, workers
        )
        values = template[t_valid].astype(np.float64)
        energy = (
            np.sum(np.square(values - values.mean())) if values.size else 0
        )
        scale = np.max(np.abs(values)) if values.size else 0
        # As the plain path: constant up to rounding carries no pattern.
        return surface, bool(is_flat(energy, values.size, scale))

    def _plain_surfaces(
        self,
        windows: list[Window],
        workers: int,
        workspace: Workspace | None,
        mapped: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Surfaces of windows without masked pixels (see `surfaces`),
        `mapped`: from their planes' variance maps."""
        # The windows are read: their pixels are arrays, not None.
        templates = np.stack(cast(_Arrays, [w.template for w in windows]))
        prepared = PreparedTemplate(templates, self.ndim, self.fft_dtype)
        workspace = workspace or Workspace()
        if mapped:
            maps = [self.maps[map_key(w)] for w in windows]
            surfaces = self._surfaces_from_maps(
                windows, prepared, maps, workers, workspace
            )
        else:
            searches = np.stack(cast(_Arrays, [w.search for w in windows]))
            searches = searches.astype(np.float64)
            axes = tuple(range(1, searches.ndim))
            searches -= searches.mean(axis=axes, keepdims=True)
            out_shape = [
                n - m + 1 for n, m in zip(searches.shape[1:], prepared.shape)
            ]
            surfaces = ncc_valid(
                prepared,
                searches,
                workers,
                workspace,
                out=workspace.get(
                    "surfaces", (len(windows), *out_shape), self.fft_dtype
                ),
            )
        return surfaces, prepared.flat.ravel()

    def _surfaces_from_maps(
        self,
        windows: list[Window],
        prepared: PreparedTemplate,
        maps: list[VarianceMap],
        workers: int,
        workspace: Workspace,
    ) -> np.ndarray:
        """Surfaces whose variances come from variance maps.

        The windows are centred only for the transform, straight into a
        zero-padded buffer of the FFT shape, in the transform's precision.
        """
        shape = windows[0].shapes[1]
        count = len(windows)
        padded = workspace.get(
            "padded", (count, *fft_shape(shape)), self.fft_dtype
        )
        for axis, size in enumerate(shape, start=1):
            padded[(slice(None),) * axis + (slice(size, None),)] = 0.0
        inside = padded[(slice(None), *[slice(0, size) for size in shape])]
        for k, w in enumerate(windows):
            assert w.search is not None
            # Centred on the way in: one pass over the buffer, not three.
            mean = w.search_sum / w.search.size
            np.subtract(w.search, mean, out=inside[k], casting="unsafe")
        out_shape = tuple(s - m + 1 for s, m in zip(shape, prepared.shape))
        norms = workspace.get("norms", (count, *out_shape), self.fft_dtype)
        # A flat template carries no pattern either: an NCC of 0.
        energies = np.where(prepared.flat, np.inf, prepared.energy).ravel()
        for k, (m, w) in enumerate(zip(maps, windows)):
            m.norms(w.search_start, energies[k], norms[k])
        return ncc_valid(
            prepared,
            padded,
            workers,
            workspace,
            out=workspace.get("surfaces", norms.shape, self.fft_dtype),
            norms=norms,
            shape=shape,
        )


def map_key(window: Window) -> tuple:
    """The key of the variance map of the plane `window` searches, for
    its template's shape."""
    return id(window.target), window.plane, window.shapes[0]


def variance_maps(groups: list[list[Window]]) -> Maps:
    """Variance maps for the planes that many placed windows search.

    Worth it when the windows of a plane together cover it once over (a
    map costs less than the running sums of as many window pixels);
    only for in-memory planes of up to MAX_MAP_PIXELS pixels with
    finite values.
    """
    maps: Maps = {}
    coverage: dict[tuple, int] = defaultdict(int)
    windows_by_key: dict[tuple, Window] = {}
    for windows in groups:
        # The windows of a group share their shapes.
        size = int(np.prod(windows[0].shapes[1]))
        for w in windows:
            key = map_key(w)
            coverage[key] += size
            windows_by_key[key] = w
    for key, w in windows_by_key.items():
        if not isinstance(w.target, np.ndarray):
            continue
        plane = w.target[w.plane]
        if (
            plane.size <= MAX_MAP_PIXELS
            and coverage[key] >= _MAP_COVERAGE * plane.size
            and all_finite(plane)
            and safe_scale(plane) == 1.0
        ):
            maps[key] = VarianceMap(plane, w.shapes[0])
    return maps
