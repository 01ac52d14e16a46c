"""normalized_cross_correlation of dask and zarr images: lazy, chunk by
chunk, and equal to the in-memory result."""

import tracemalloc

import numpy as np
import pytest

from napari_normxcorr import normalized_cross_correlation

da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")

MODES = ["full", "same", "valid"]
# Uneven chunks; the 17-pixel column chunk is exactly the template's width.
CHUNKS = ((50, 60, 21, 72), (40, 17, 130))
TOLERANCE = {"double": 1e-9, "single": 1e-4}


def textured(shape, seed=0):
    """A rough surface (random walk along rows) and a noisy patch of it."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=shape).cumsum(axis=0)
    corner = tuple(s // 4 for s in shape)
    patch = image[tuple(slice(c, c + 21) for c in corner)]
    template = patch[..., :17] + rng.normal(size=patch[..., :17].shape)
    return image, template


class CountingArray:
    """An in-memory array that records every index it is read at."""

    def __init__(self, values):
        self.values = values
        self.shape, self.dtype, self.ndim = (
            values.shape,
            values.dtype,
            values.ndim,
        )
        self.reads = []

    def __getitem__(self, index):
        self.reads.append(index)
        return self.values[index]


def chunks_read(reads, chunk):
    """Indices of the square chunks of side `chunk` that `reads` touched."""
    return {
        tuple(s.start // chunk for s in index)
        for index in reads
        if all(s.stop > s.start for s in index)
    }


@pytest.mark.parametrize("fft_precision", ["double", "single"])
@pytest.mark.parametrize("mode", MODES)
def test_equals_in_memory_on_uneven_chunks(mode, fft_precision):
    """Every pixel, block boundaries included, equals the in-memory NCC
    (1e-9 in double precision, 1e-4 in single)."""
    image, template = textured((203, 187))
    lazy = normalized_cross_correlation(
        template,
        da.from_array(image, chunks=CHUNKS),
        mode,
        fft_precision=fft_precision,
    )
    expected = normalized_cross_correlation(
        template, image, mode, fft_precision=fft_precision
    )
    assert isinstance(lazy, da.Array)
    assert lazy.shape == expected.shape and lazy.dtype == np.float64
    np.testing.assert_allclose(
        lazy.compute(), expected, rtol=0, atol=TOLERANCE[fft_precision]
    )


@pytest.mark.parametrize("mode", MODES)
def test_region_across_block_boundaries(mode):
    """A region straddling four blocks, computed alone, equals that region
    of the in-memory NCC."""
    image, template = textured((203, 187), seed=1)
    lazy = normalized_cross_correlation(
        template, da.from_array(image, chunks=CHUNKS), mode
    )
    region = np.s_[35:125, 30:70]  # rows over 50 and 110, cols over 40, 57
    expected = normalized_cross_correlation(template, image, mode)[region]
    np.testing.assert_allclose(
        lazy[region].compute(), expected, rtol=0, atol=1e-9
    )


@pytest.mark.parametrize("mode", MODES)
def test_three_dimensional_and_largest_template(mode):
    """N-D, with the template as long as the chunks along every axis."""
    rng = np.random.default_rng(2)
    image = rng.normal(size=(24, 18, 21))
    template = image[5:13, 6:12, 4:11] + 0.3 * rng.normal(size=(8, 6, 7))
    lazy = normalized_cross_correlation(
        template, da.from_array(image, chunks=(8, 6, 7)), mode
    )
    np.testing.assert_allclose(
        lazy.compute(),
        normalized_cross_correlation(template, image, mode),
        rtol=0,
        atol=1e-9,
    )


def test_integer_image_with_large_offset():
    """uint16 data far from 0 keeps its precision chunk by chunk."""
    image, template = textured((150, 130), seed=3)
    image = (60000 + 20 * (image - image.min()) / np.ptp(image)).astype(
        np.uint16
    )
    template = image[40:61, 50:67].astype(np.float64) + 0.5
    lazy = normalized_cross_correlation(
        template, da.from_array(image, chunks=(60, 70)), "same"
    )
    np.testing.assert_allclose(
        lazy.compute(),
        normalized_cross_correlation(template, image, "same"),
        rtol=0,
        atol=1e-9,
    )


@pytest.mark.parametrize("mode", MODES)
def test_zarr_store_round_trip(tmp_path, mode):
    """A zarr image in, the NCC written to a zarr store and read back."""
    image, template = textured((160, 150), seed=4)
    da.from_array(image.astype(np.float32), chunks=40).to_zarr(
        str(tmp_path / "image.zarr")
    )
    stored = zarr.open_array(str(tmp_path / "image.zarr"), mode="r")
    lazy = normalized_cross_correlation(template, stored, mode)
    lazy.to_zarr(str(tmp_path / "ncc.zarr"))
    written = zarr.open_array(str(tmp_path / "ncc.zarr"), mode="r")[...]
    expected = normalized_cross_correlation(template, stored[...], mode)
    np.testing.assert_allclose(written, expected, rtol=0, atol=1e-9)


def test_full_mode_chunks_stay_regular():
    """'full' adds its m - 1 pixels as chunks of their own, so that zarr
    can store the result as it is (no rechunk, no warning)."""
    image, template = textured((190, 150), seed=5)
    lazy = normalized_cross_correlation(
        template, da.from_array(image, chunks=50), "full"
    )
    assert lazy.chunks == ((50, 50, 50, 50, 10), (50, 50, 50, 16))


def test_computing_a_region_reads_only_its_chunks():
    """Only the chunks under a region and their neighbours are read."""
    image, template = textured((600, 600), seed=6)
    counting = CountingArray(image)
    source = da.from_array(counting, chunks=100, asarray=True)
    lazy = normalized_cross_correlation(template, source, "same")
    # One pass up front for the global mean, then nothing until computed.
    assert len(chunks_read(counting.reads, 100)) == 36
    counting.reads.clear()
    lazy[150:250, 350:450].compute()
    assert chunks_read(counting.reads, 100) == {
        (row, col) for row in range(4) for col in range(2, 6)
    }


def test_masked_reads_nothing_up_front():
    """With an image mask, nothing is read before the result is computed."""
    image, template = textured((300, 300), seed=7)
    counting = CountingArray(image)
    source = da.from_array(counting, chunks=100, asarray=True)
    lazy = normalized_cross_correlation(
        template, source, "valid", image_mask=np.zeros(image.shape, bool)
    )
    assert chunks_read(counting.reads, 100) == set()
    assert isinstance(lazy, da.Array)


def test_memory_of_a_task_is_a_few_chunks():
    """One block of a zarr image, computed alone, allocates a small
    multiple of its chunk's float64 size, far below the image's."""
    rng = np.random.default_rng(8)
    image = rng.normal(size=(768, 768)).astype(np.float32)
    store = zarr.create_array(
        store={}, shape=image.shape, chunks=(256, 256), dtype=np.float32
    )
    store[...] = image
    template = image[300:351, 400:451]
    lazy = normalized_cross_correlation(template, store, "same")
    tracemalloc.start()
    try:
        lazy.blocks[1, 1].compute(scheduler="sync")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 256 * 256 * 8


def as_kind(mask, kind):
    """`mask` as a numpy, dask (other chunks than the image's) or zarr
    array."""
    if kind == "dask":
        return da.from_array(mask, chunks=50)
    if kind == "zarr":
        stored = zarr.create_array(
            store={}, shape=mask.shape, chunks=(30, 30), dtype=bool
        )
        stored[...] = mask
        return stored
    return mask


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("full", "dask"), ("same", "zarr"), ("valid", "numpy")],
)
def test_masks_equal_in_memory(mode, kind):
    """An image mask (numpy, dask or zarr) and a template mask give the
    in-memory masked NCC, unscored positions (NaN) included; NaN pixels
    count as masked."""
    image, template = textured((203, 187), seed=9)
    image_mask = np.zeros(image.shape, bool)
    image_mask[100:120, 30:90] = True
    image[5:9, 150:160] = np.nan
    template_mask = np.zeros(template.shape, bool)
    template_mask[:4, :5] = True
    chunks = (68, 63)
    lazy = normalized_cross_correlation(
        template,
        da.from_array(image, chunks=chunks),
        mode,
        template_mask=template_mask,
        image_mask=as_kind(image_mask, kind),
    )
    expected = normalized_cross_correlation(
        template,
        image,
        mode,
        template_mask=template_mask,
        image_mask=image_mask,
    )
    got = lazy.compute()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_chunk_smaller_than_template_is_refused():
    """A chunk shorter than the template names the axis and a rechunk."""
    image, template = textured((200, 187))
    source = da.from_array(image, chunks=(50, 60))  # a last column of 7
    with pytest.raises(ValueError, match=r"axis 1.*image\.rechunk\(\{1: "):
        normalized_cross_correlation(template, source, "same")


@pytest.mark.parametrize(
    ("image", "template", "message"),
    [
        (np.ones((60, 60), complex), np.ones((5, 5)), "image is complex"),
        (np.ones((60, 60)), np.ones((5, 5), complex), "template is complex"),
        (np.ones((60, 60)), np.ones((70, 5)), "larger than image"),
        (np.ones((60, 60)), np.ones((5, 5, 1)), "more dimensions"),
    ],
)
def test_bad_input_is_refused(image, template, message):
    """Complex or misshapen inputs raise a ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        normalized_cross_correlation(template, da.from_array(image, chunks=30))


def test_nan_without_mask_is_refused_up_front():
    """NaN in an unmasked lazy image raises when called, not mid-run."""
    image, template = textured((100, 100))
    image[70, 3] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite value.*image_mask"):
        normalized_cross_correlation(template, da.from_array(image, chunks=50))


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"mode": "circular"}, "mode must be one of"),
        ({"fft_precision": "half"}, "fft_precision must be one of"),
        (
            {"image_mask": np.zeros((5, 5), bool)},
            "image_mask has shape",
        ),
        (
            {"template_mask": np.zeros((3, 3), bool)},
            "template_mask has shape",
        ),
        (
            {"image_mask": np.zeros((100, 100), bool), "min_overlap": 2},
            "min_overlap",
        ),
    ],
)
def test_bad_options_are_refused(keywords, message):
    """Bad modes, precisions, masks and overlaps raise before any task."""
    image, template = textured((100, 100))
    with pytest.raises(ValueError, match=message):
        normalized_cross_correlation(
            template, da.from_array(image, chunks=50), **keywords
        )


def test_huge_values_are_scaled_as_in_memory():
    """float64 values near overflow are scaled by the same power of two
    as in memory before their squares are summed."""
    image, template = textured((120, 110), seed=10)
    image *= 2.0**700
    lazy = normalized_cross_correlation(
        template, da.from_array(image, chunks=(40, 55)), "full"
    )
    np.testing.assert_allclose(
        lazy.compute(),
        normalized_cross_correlation(template, image, "full"),
        rtol=0,
        atol=1e-9,
    )
