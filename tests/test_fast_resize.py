"""The scaled crop reader: scaled 2-D windows read by one crop and one cv2 warp.

``sampler_core.read._read_scaled`` reads a scaled window of a single-file image
(``scale``, ``scale_range``, ``window_size_range`` + ``output_dims``) from the
cache. Oracles:

* nearest: the delayed_image reader (``_read_delayed``, the path these windows took
  before) to the bit, and plain numpy: sample pixel ``(i, j)`` is the source pixel
  holding ``tf_rel_to_abs @ (j, i)`` (the pixel's top-left corner, design rule 18) in
  the window padded with ``numpy.pad``;
* linear / area / cubic: ``scipy.ndimage.map_coordinates`` (exact bilinear) or
  ``kwimage.warp_affine`` (the antialiased warp) of the *whole* image, at the points
  ``params['tf_rel_to_abs']`` gives for the sample's pixel centres; and the delayed
  reader wherever a pixel's interpolation footprint stays inside the window's part of
  the image (at the window's edge the delayed reader blended the pixels with nodata).

Tolerance (linear family): cv2 rounds each source coordinate to 1/32 pixel
(``INTER_BITS = 5``) and integer results to the nearest value; starting the same
mapping at another pixel (our block includes a margin) can round a coordinate at a
tie the other way. So a value may differ by 1 plus 1/32 of the range of the pixels
it blends; we check that bound everywhere and that such differences are rare.
"""
from __future__ import annotations

import math
import os
import warnings

import kwcoco
import kwimage
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sampler_core
from sampler_core import read as read_mod
from sampler_core.window import resolve

tifffile = pytest.importorskip('tifffile')

pytestmark = [
    pytest.mark.filterwarnings('ignore::FutureWarning'),
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),
]

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.function_scoped_fixture])

#: (dtype, channels) of the test images
KINDS = [(np.uint8, 3), (np.uint16, 1), (np.float32, 5)]
IMAGE_HW = (61, 74)


def _pixels(h, w, c, dtype, seed):
    """Smooth ramps plus noise, so interpolated values are informative."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    chans = [np.sin(yy / (3 + k)) + np.cos(xx / (4 + 2 * k)) + rng.normal(0, 0.3, (h, w))
             for k in range(c)]
    data = np.stack(chans, axis=2)
    data = (data - data.min()) / (data.max() - data.min())
    if np.dtype(dtype).kind == 'f':
        return (data * 100 - 20).astype(dtype)
    return np.round(data * np.iinfo(dtype).max).astype(dtype)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """``{(dtype name, channels): (npy sampler, source pixels)}``; one image each."""
    out = {}
    for k, (dtype, channels) in enumerate(KINDS):
        dpath = tmp_path_factory.mktemp(f'img_{np.dtype(dtype).name}')
        data = _pixels(*IMAGE_HW, channels, dtype, seed=k)
        tifffile.imwrite(dpath / 'img.tif', data if channels > 1 else data[:, :, 0],
                         photometric='minisblack')
        h, w = IMAGE_HW
        dset = kwcoco.CocoDataset({
            'categories': [{'id': 1, 'name': 'a'}],
            'images': [{'id': 1, 'file_name': 'img.tif', 'height': h, 'width': w}],
            'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1,
                             'bbox': [20.25, 10.5, 17.0, 9.75]}]},
            bundle_dpath=os.fspath(dpath))
        sampler = sampler_core.CocoSampler(dset, backend='npy', workdir=dpath / 'work')
        out[np.dtype(dtype).name, channels] = (sampler, data)
    return out


def _fit(out, size):
    """The scale ``output_dims`` gives (``SamplingConfig.item_target``)."""
    from sampler_core.config import _fit_scale
    return _fit_scale(out, size)


@st.composite
def windows(draw, interpolations=('nearest',), pad_modes=None):
    h0, w0 = IMAGE_HW
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    y0 = draw(st.integers(-h - 3, h0 + 3))
    x0 = draw(st.integers(-w - 3, w0 + 3))
    pad = draw(st.integers(0, 3))
    kind = draw(st.sampled_from(['float', 'fit']))
    if kind == 'float':
        sy = draw(st.floats(0.2, 3.0))
        sx = draw(st.sampled_from([sy, draw(st.floats(0.2, 3.0))]))
    else:   # output_dims: (out / padded size) nudged down
        sy = _fit(draw(st.integers(1, 60)), h + 2 * pad)
        sx = _fit(draw(st.integers(1, 60)), w + 2 * pad)
    assume((sy, sx) != (1.0, 1.0))   # not scaled: the crop reader's window
    modes = pad_modes or [None, {'mode': 'constant', 'constant_values': 7},
                          {'mode': 'reflect'}, {'mode': 'edge'}, {'mode': 'symmetric'},
                          {'mode': 'wrap'}]
    padkw = draw(st.sampled_from(modes))
    target = {'gid': 1, 'space_slice': (slice(y0, y0 + h), slice(x0, x0 + w)),
              'scale': (sy, sx), 'pad': pad,
              'interpolation': draw(st.sampled_from(interpolations))}
    if padkw is not None:
        target['padkw'] = padkw
    return target


def _inside(target) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: the padded window's part inside the image (may be empty)."""
    (sl_y, sl_x), p = target['space_slice'], target['pad']
    h0, w0 = IMAGE_HW
    y0, y1, x0, x1 = sl_y.start - p, sl_y.stop + p, sl_x.start - p, sl_x.stop + p
    return max(y0, 0), min(y1, h0), max(x0, 0), min(x1, w0)


def _load(sampler, target, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return sampler.load_sample(dict(target), **kw)


def _delayed(sampler, target):
    """The delayed_image reader on the same window (what these windows used before)."""
    return read_mod._read_delayed(sampler.frames, resolve(sampler, dict(target)))[0]


def _fill(data):
    return np.nan if data.dtype.kind == 'f' else 0


def _numpy_window(data, target, margin=0):
    """The padded window grown by ``margin``, padded with numpy as its ``padkw`` says
    (the nodata fill: 0 / NaN), and its top-left ``(y, x)`` in image pixels."""
    (sl_y, sl_x), p = target['space_slice'], target['pad'] + margin
    y0, y1, x0, x1 = sl_y.start - p, sl_y.stop + p, sl_x.start - p, sl_x.stop + p
    h0, w0 = data.shape[:2]
    iy0, iy1, ix0, ix1 = max(y0, 0), min(y1, h0), max(x0, 0), min(x1, w0)
    iy1, ix1 = max(iy1, iy0), max(ix1, ix0)
    pads = [(iy0 - y0, y1 - iy1), (ix0 - x0, x1 - ix1), (0, 0)]
    if iy1 == iy0 or ix1 == ix0:  # all padding
        pads = [(y1 - y0, 0), (x1 - x0, 0), (0, 0)]
    padkw = target.get('padkw') or {'mode': 'constant', 'constant_values': _fill(data)}
    return np.pad(data[iy0:iy1, ix0:ix1], pads, **padkw), (y0, x0)


# --------------------------------------------------------------------------- reader choice
def test_scaled_2d_windows_skip_delayed_image(images, monkeypatch):
    sampler, _ = images['uint8', 3]
    calls = []
    real = read_mod._read_delayed
    monkeypatch.setattr(read_mod, '_read_delayed', lambda *a: calls.append(1) or real(*a))
    target = {'gid': 1, 'space_slice': (slice(-3, 30), slice(40, 90)), 'scale': 0.6}
    for extra in [{}, {'interpolation': 'nearest'}, {'interpolation': 'area'},
                  {'padkw': {'mode': 'reflect'}}, {'channels': 'r|b'}]:
        sample = _load(sampler, dict(target, **extra))
        assert sample['im'].shape[:2] == (20, 30)
    assert calls == []
    # what it does not do goes through delayed_image as before: a downscale by more than 8
    # with antialias (kwimage's pyramid), a pad mode that depends on the pad's width
    _load(sampler, dict(target, scale=0.1))
    _load(sampler, dict(target, padkw={'mode': 'linear_ramp'}))
    assert len(calls) == 2


def test_output_dims_items_use_the_scaled_crop_reader(tmp_path, monkeypatch):
    calls = []
    real = read_mod._read_scaled
    monkeypatch.setattr(read_mod, '_read_scaled', lambda *a: calls.append(1) or real(*a))
    cfg = sampler_core.SamplingConfig(dataset='shapes8', window_dims=(64, 64), n_pos=3,
                                      n_neg=1, window_size_range=[32, 64],
                                      output_dims=[48, 40], backend='npy',
                                      workdir=os.fspath(tmp_path))
    sampler = sampler_core.CocoSampler.from_config(cfg)
    for index in range(4):
        sample = sampler.load_item(index)
        assert sample['im'].shape == (48, 40, 3)
        # the sample spans the window: tf_rel_to_abs maps its far corner onto the window's
        x0, y0, x1, y1 = sample['params']['sample_tlbr'].data
        far = sample['params']['tf_rel_to_abs'] @ [40, 48, 1]
        np.testing.assert_allclose(far[:2], [x1, y1], rtol=0, atol=1e-9)
    assert len(calls) == 4


# --------------------------------------------------------------------------- nearest
@pytest.mark.parametrize('kind', list(range(len(KINDS))), ids=[f'{np.dtype(d).name}x{c}'
                                                               for d, c in KINDS])
@settings(max_examples=120, **SETTINGS)
@given(target=windows(('nearest',)))
def test_nearest_is_the_delayed_reader_and_the_corner_pixel(images, kind, target):
    dtype, channels = KINDS[kind]
    sampler, data = images[np.dtype(dtype).name, channels]
    padkw = target.get('padkw')
    iy0, iy1, ix0, ix1 = _inside(target)
    assume(not (padkw and padkw['mode'] != 'constant' and (iy1 <= iy0 or ix1 <= ix0)))
    sample = _load(sampler, target, with_annots=False)
    im = sample['im']
    assert im.dtype == data.dtype and im.shape[2] == channels
    # 1. the delayed_image reader, to the bit
    old = _delayed(sampler, target)
    assert old.shape == im.shape
    np.testing.assert_array_equal(im, old)
    # 2. numpy: the pixel of the padded window holding each pixel's top-left corner, which
    # tf_rel_to_abs maps to (x0 + j / sx, y0 + i / sy). A corner within rounding of a pixel
    # edge (13 / 2.6) may take either pixel: 2.6 is stored a little above 2.6.
    window, (wy0, wx0) = _numpy_window(data, target)
    win = resolve(sampler, dict(target))
    x0, y0, _, _ = win.padded_ltrb
    sy, sx = win.scale or (1.0, 1.0)
    tf = sample['params']['tf_rel_to_abs']
    np.testing.assert_allclose(tf, [[1 / sx, 0, x0], [0, 1 / sy, y0], [0, 0, 1]], rtol=1e-12,
                               atol=1e-9)
    ok = np.zeros(im.shape, dtype=bool)
    for ey in (-1e-9, 1e-9):
        for ex in (-1e-9, 1e-9):
            rows = y0 + np.floor(np.arange(im.shape[0]) / sy + ey).astype(int) - wy0
            cols = x0 + np.floor(np.arange(im.shape[1]) / sx + ex).astype(int) - wx0
            rows, cols = rows.clip(0, window.shape[0] - 1), cols.clip(0, window.shape[1] - 1)
            want = window[np.ix_(rows, cols)]
            ok |= (im == want) | (np.isnan(want) & np.isnan(im))
    assert ok.all(), (target, np.argwhere(~ok)[:5])

# --------------------------------------------------------------------------- linear family
def _tolerance(values: np.ndarray) -> float:
    """1 (integer rounding) + 1/32 of the range blended (cv2's 1/32-pixel coordinates)."""
    finite = values[np.isfinite(values)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    return (1.0 if values.dtype.kind in 'iu' else 1e-4 * max(spread, 1.0)) + spread / 32


def _assert_close(got, want, tol, what, rare=False, ambiguous=None):
    """``|got - want| <= tol`` (NaN where the other is NaN, except at ``ambiguous``
    pixels); with ``rare`` (the same cv2 arithmetic on both sides), differences beyond
    float rounding in at most 5 %."""
    got, want = got.astype(np.float64), want.astype(np.float64)
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    if ambiguous is not None:
        nan_got, nan_want = nan_got & ~ambiguous, nan_want & ~ambiguous
    np.testing.assert_array_equal(nan_got, nan_want, err_msg=str(what))
    diff = np.abs(np.nan_to_num(got) - np.nan_to_num(want))
    diff[np.isnan(got) | np.isnan(want)] = 0
    assert diff.max(initial=0) <= tol, (what, diff.max(), tol)
    if rare and diff.size >= 100:
        assert (diff > 1e-4 * max(tol, 1)).mean() <= 0.05, what


def _centres(sample):
    """``(ys, xs)``: image coordinates (pixel centres at +0.5) of the sample's pixel
    centres, through params['tf_rel_to_abs']."""
    im = sample['im']
    tf = sample['params']['tf_rel_to_abs']
    xs = (tf @ np.stack([np.arange(im.shape[1]) + 0.5, np.zeros(im.shape[1]),
                         np.ones(im.shape[1])]))[0]
    ys = (tf @ np.stack([np.zeros(im.shape[0]), np.arange(im.shape[0]) + 0.5,
                         np.ones(im.shape[0])]))[1]
    return ys, xs


@pytest.mark.parametrize('kind', list(range(len(KINDS))), ids=[f'{np.dtype(d).name}x{c}'
                                                               for d, c in KINDS])
@settings(max_examples=80, **SETTINGS)
@given(target=windows(('linear', 'area'), pad_modes=[
    {'mode': 'constant', 'constant_values': 7}, {'mode': 'edge'}, {'mode': 'reflect'}]),
    big=st.integers(0, 1))
def test_linear_is_bilinear_at_tf_rel_to_abs_of_the_pixel_centres(images, kind, target, big):
    """No antialias: each pixel is the exact bilinear interpolation (scipy) of the image,
    padded with numpy, at tf_rel_to_abs of the pixel's centre."""
    from scipy.ndimage import map_coordinates
    dtype, channels = KINDS[kind]
    sampler, data = images[np.dtype(dtype).name, channels]
    if big:   # upscales only (no antialias blur); 'area' is bilinear in a warp
        target['scale'] = tuple(1 + s for s in target['scale'])
    target['antialias'] = False
    iy0, iy1, ix0, ix1 = _inside(target)
    margin = 4 + math.ceil(1 / min(target['scale']))   # past what the sample reads
    # the numpy pad of the window's inside part equals the pad of the whole image
    # when that part is at least as deep as the pad it mirrors
    (sl_y, sl_x), p = target['space_slice'], target['pad'] + margin
    need_y = max(-(sl_y.start - p), sl_y.stop + p - IMAGE_HW[0], 0) + 1
    need_x = max(-(sl_x.start - p), sl_x.stop + p - IMAGE_HW[1], 0) + 1
    assume(target['padkw']['mode'] == 'constant' or
           (iy1 - iy0 >= need_y and ix1 - ix0 >= need_x))
    sample = _load(sampler, target, with_annots=False)
    im = sample['im']
    assert im.dtype == data.dtype
    canvas, (cy0, cx0) = _numpy_window(data, target, margin)
    ys, xs = _centres(sample)
    yy, xx = np.meshgrid(ys - 0.5 - cy0, xs - 0.5 - cx0, indexing='ij')
    want = np.stack([map_coordinates(canvas[:, :, c].astype(np.float64), [yy, xx], order=1,
                                     mode='nearest') for c in range(channels)], axis=2)
    if data.dtype.kind in 'iu':
        want = np.round(want)
    _assert_close(im, want, _tolerance(canvas), target)


@pytest.mark.parametrize('kind', list(range(len(KINDS))), ids=[f'{np.dtype(d).name}x{c}'
                                                               for d, c in KINDS])
@settings(max_examples=60, **SETTINGS)
@given(target=windows(('linear', 'area', 'cubic'), pad_modes=[None]))
def test_antialiased_warp_of_the_whole_image_and_the_delayed_reader(images, kind, target):
    """The nodata fill with the default antialias: kwimage's warp of the whole image (cv2
    fills outside it) everywhere, the delayed reader where a pixel's footprint stays inside
    the window's part of the image."""
    dtype, channels = KINDS[kind]
    sampler, data = images[np.dtype(dtype).name, channels]
    sy, sx = target['scale']
    assume(min(sy, sx) > 1 / 8)
    iy0, iy1, ix0, ix1 = _inside(target)
    sample = _load(sampler, target, with_annots=False)
    im = sample['im']
    win = resolve(sampler, dict(target))
    x0, y0, _, _ = win.padded_ltrb
    # kwimage.warp_affine of the whole image by the inverse of tf_rel_to_abs
    tf = kwimage.Affine(np.linalg.inv(sample['params']['tf_rel_to_abs']))
    whole = np.stack([kwimage.warp_affine(data[:, :, c], tf, dsize=(im.shape[1], im.shape[0]),
                                          interpolation=target['interpolation'],
                                          antialias=win.antialias and min(sx, sy) < 1,
                                          border_value=_fill(data), origin_convention='corner')
                      for c in range(data.shape[2])], axis=2)
    # what a pixel blends: the window's part of the image and the fill (0 for integers)
    region = data[iy0:max(iy1, iy0), ix0:max(ix1, ix0)].ravel()
    tol = _tolerance(np.append(region, np.zeros(1, region.dtype))
                     if data.dtype.kind in 'iu' else region) if region.size else 1
    # a point within cv2's 1/32-pixel rounding of a pixel centre may or may not blend the
    # next pixel: at the image's edge, NaN (float data) or not
    ys, xs = _centres(sample)
    near = [np.abs((c - 0.5) - np.round(c - 0.5)) <= 1 / 32 + 1e-9 for c in (ys, xs)]
    ambiguous = (near[0][:, None] | near[1][None, :])[:, :, None]
    _assert_close(im, whole, tol, ('whole image', target), ambiguous=ambiguous)
    # the delayed reader, away from the window's edges inside the image (it cannot warp
    # more than 4 channels with cubic: cv2 refuses)
    if target['interpolation'] == 'cubic' and channels > 4:
        return
    old = _delayed(sampler, target)
    radius = read_mod._KERNEL_RADIUS[target['interpolation']]
    ys, xs = _centres(sample)
    keep = []
    for centres, s, lo, hi, lo_in, hi_in, size in [
            (ys, sy, y0, None, iy0, iy1, IMAGE_HW[0]), (xs, sx, x0, None, ix0, ix1, IMAGE_HW[1])]:
        r = radius + (math.ceil(2.5 / s) // 2 + 1 if s < 1 or min(sy, sx) < 1 else 0) + 1
        c = centres - 0.5
        # footprint inside the window's part of the image, or wholly outside the image
        inside = (np.floor(c - r) >= lo_in) & (np.ceil(c + r) <= hi_in - 1)
        outside = (c + r < -0.5) | (c - r > size - 0.5)
        keep.append(inside | outside)
    mask = keep[0][:, None] & keep[1][None, :]
    _assert_close(im[mask], old[mask], tol, ('delayed reader', target), rare=True)


# --------------------------------------------------------------------------- the fix
def test_upscaled_window_edges_are_image_pixels_not_nodata(images):
    """A window inside the image, upscaled: its first / last rows and columns blend the
    image's own neighbouring pixels (the delayed reader blended them with 0 / NaN)."""
    from scipy.ndimage import map_coordinates
    sampler, data = images['float32', 5]
    target = {'gid': 1, 'space_slice': (slice(10, 30), slice(20, 44)), 'scale': 1.5}
    sample = _load(sampler, target, with_annots=False)
    im = sample['im']
    assert im.shape == (30, 36, 5) and not np.isnan(im).any()
    ys, xs = _centres(sample)
    yy, xx = np.meshgrid(ys - 0.5, xs - 0.5, indexing='ij')
    want = np.stack([map_coordinates(data[:, :, c].astype(np.float64), [yy, xx], order=1)
                     for c in range(5)], axis=2)
    _assert_close(im, want, _tolerance(data[8:32, 18:46]), target)
    u8, data8 = images['uint8', 3]
    edge = _load(u8, target, with_annots=False)['im'][0].astype(float)
    yy, xx = np.meshgrid(ys[:1] - 0.5, xs - 0.5, indexing='ij')
    want = np.stack([map_coordinates(data8[:, :, c].astype(np.float64), [yy, xx], order=1)
                     for c in range(3)], axis=2)[0]
    assert np.abs(edge - want).max() <= 1 + 255 / 32


def test_scaled_windows_on_the_cog_backend_equal_npy(images, tmp_path):
    sampler, _ = images['uint16', 1]
    cog = sampler_core.CocoSampler(sampler.dset, backend='cog', workdir=tmp_path)
    for target in [{'gid': 1, 'space_slice': (slice(-5, 40), slice(30, 80)), 'scale': 0.7},
                   {'gid': 1, 'space_slice': (slice(5, 25), slice(3, 20)), 'scale': 2.5,
                    'interpolation': 'nearest', 'padkw': {'mode': 'reflect'}, 'pad': 2}]:
        a = _load(sampler, target)
        b = _load(cog, target)
        np.testing.assert_array_equal(a['im'], b['im'])
        np.testing.assert_array_equal(a['params']['tf_rel_to_abs'],
                                      b['params']['tf_rel_to_abs'])


OPTIONS = [{'as_xarray': True}, {'dtype': 'int32'}, {'dtype': np.float64}, {'nodata': 0},
           {'nodata': 'float'}, {'channels': None}]


#: (kind, options) pairs; channel subsets on the images with 3 channels or more
OPTION_CASES = [(k, o) for k in range(len(KINDS)) for o in OPTIONS
                if 'channels' not in o or KINDS[k][1] >= 3]


@pytest.mark.parametrize('kind,options', OPTION_CASES,
                         ids=[f'{np.dtype(KINDS[k][0]).name}x{KINDS[k][1]}-{o}'
                              for k, o in OPTION_CASES])
def test_read_options_and_params_equal_the_delayed_reader(images, kind, options,
                                                          monkeypatch):
    """dtype, nodata, channels, as_xarray and every param: as the delayed reader gives them."""
    dtype, channels = KINDS[kind]
    sampler, _ = images[np.dtype(dtype).name, channels]
    if 'channels' in options:   # two of the image's own channels, out of order
        names = read_mod._state(sampler.frames).channel_names(1)
        options = dict(options, channels=f'{names[2]}|{names[0]}')
    target = dict({'gid': 1, 'space_slice': (slice(-6, 30), slice(50, 80)), 'scale': 0.7,
                   'interpolation': 'nearest'}, **options)
    calls = []
    real = read_mod._read_scaled
    monkeypatch.setattr(read_mod, '_read_scaled', lambda *a: calls.append(1) or real(*a))
    new = _load(sampler, target)
    assert calls == [1]
    win = resolve(sampler, dict(target))
    old_im, old_extra = read_mod._read_delayed(sampler.frames, win)
    if options.get('as_xarray'):
        assert new['im'].dims == old_im.dims
        assert new['im'].coords['c'].values.tolist() == old_im.coords['c'].values.tolist()
    np.testing.assert_array_equal(np.asarray(new['im']), np.asarray(old_im))
    assert np.asarray(new['im']).dtype == np.asarray(old_im).dtype
    want = read_mod.sample_params(win, old_extra)
    assert set(new['params']) == set(want)
    for key, value in want.items():
        got = new['params'][key]
        if key == 'sample_tlbr':
            np.testing.assert_array_equal(got.data, value.data)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got, value)
        elif key == 'frame_sample_from_grid_warps':
            assert [np.asarray(g).tolist() for g in got] == [np.asarray(v).tolist() for v in value]
        elif key == 'request_chanspec':
            assert str(got) == str(value)
        else:
            assert got == value, key
