"""The NCC core: normalized cross-correlation of whole images (in memory
or lazily, block by block), of many windows at once, with no-data masks;
peaks and their sub-pixel fits; the normxcorr2-compatible functions.

Needs only numpy and scipy (dask for lazy images).
"""

from ._debug import visualize_cross_correlation
from ._ncc import normalized_cross_correlation, normalized_cross_correlation_2d
from ._offsets import find_template_offset, find_template_offset_centered

__all__ = [
    "find_template_offset",
    "find_template_offset_centered",
    "normalized_cross_correlation",
    "normalized_cross_correlation_2d",
    "visualize_cross_correlation",
]
