"""Pixels of sampled windows equal an independent crop of the source image.

Every expected array is computed from the image file decoded with PIL and
cropped / padded with plain numpy (``synthetic.expected_pixels``), for every
target form, pad form, pad mode, dtype cast and nodata, on the kwcoco demo data
('shapes8', single frames of 'vidshapes2') and on the larger synthetic images,
with ``backend=None`` and ``backend='npy'``.
"""
from __future__ import annotations

import numpy as np
import pytest

import synthetic
from conftest import BACKEND_IDS, BACKENDS

DATASETS = ['shapes8_dset', 'vidshapes2_dset', 'synth_dset']
DATASET_IDS = ['shapes8', 'vidshapes2', 'synth']


class Ctx:
    """Ids and sizes a target form needs, chosen from a dataset."""

    def __init__(self, dset):
        # the image with the most annotations (ties: the lowest id); for vidshapes2
        # this is a single frame of a video, addressed by its gid
        gids = sorted(dset.imgs, key=lambda g: (-len(dset.index.gid_to_aids[g]), g))
        self.gid = gids[0]
        img = dset.imgs[self.gid]
        self.H, self.W = int(img['height']), int(img['width'])
        aids = sorted(a for a in dset.index.gid_to_aids[self.gid]
                      if dset.anns[a].get('bbox') and dset.anns[a]['bbox'][2] > 0)

        def outside(aid):  # how far the box sticks out of (or how close to) the border
            x, y, w, h = dset.anns[aid]['bbox']
            return max(-x, -y, x + w - self.W, y + h - self.H)
        self.aid_inner = min(aids, key=lambda a: (outside(a), a))
        self.aid_edge = max(aids, key=lambda a: (outside(a), -a))


TARGETS = {
    'gid-whole': lambda c: {'gid': c.gid},
    'image_id-whole': lambda c: {'image_id': c.gid},
    'aid-inner': lambda c: {'aid': c.aid_inner},
    'aid-edge': lambda c: {'aid': c.aid_edge},
    'aid-gid-consistent': lambda c: {'aid': c.aid_edge, 'gid': c.gid},
    'aid-pad-sym': lambda c: {'aid': c.aid_edge, 'pad': (7, 11)},
    'aid-pad-int': lambda c: {'aid': c.aid_inner, 'pad': 5},
    'aid-pad-tblr': lambda c: {'aid': c.aid_edge, 'pad': ((3, 9), (0, 14))},
    'aid-window-square': lambda c: {'aid': c.aid_edge, 'window_dims': 'square'},
    'aid-window-tuple': lambda c: {'aid': c.aid_inner, 'window_dims': (50, 81)},
    'center-size': lambda c: {'gid': c.gid, 'cx': 10.3, 'cy': c.H - 5.5, 'width': 40, 'height': 31},
    'center-fractional-size': lambda c: {'gid': c.gid, 'cx': c.W / 2, 'cy': 3.75,
                                         'width': 20.2, 'height': 9.5},
    'center-window_dims': lambda c: {'gid': c.gid, 'cx': c.W - 1, 'cy': 0, 'width': 1,
                                     'height': 1, 'window_dims': (64, 48)},
    'center-square': lambda c: {'gid': c.gid, 'cx': c.W / 3, 'cy': c.H / 3, 'width': 12.5,
                                'height': 37, 'window_dims': 'square'},
    'center-far-off-image': lambda c: {'gid': c.gid, 'cx': -500, 'cy': c.H + 400, 'width': 30,
                                       'height': 20, 'pad': (4, 6)},
    'center-larger-than-image': lambda c: {'gid': c.gid, 'cx': c.W / 2, 'cy': c.H / 2,
                                           'window_dims': (c.H + 40, c.W + 31)},
    'gid-window_dims-centred': lambda c: {'gid': c.gid, 'window_dims': (33, 70)},
    'gid-window_dims-larger-than-image': lambda c: {'gid': c.gid, 'window_dims': (c.H + 9, 20)},
    'slices': lambda c: {'gid': c.gid, 'slices': (slice(10, 60), slice(c.W - 30, c.W + 20))},
    'space_slice': lambda c: {'gid': c.gid, 'space_slice': (slice(-15, 40), slice(None, 25))},
    'space_slice-pad': lambda c: {'gid': c.gid, 'space_slice': (slice(5, 25), slice(7, 30)),
                                  'pad': ((2, 30), (9, 1))},
    'slices-negative-stop': lambda c: {'gid': c.gid, 'slices': (slice(None, -20), slice(None, -10))},
}


def _dataset(request, name):
    return request.getfixturevalue(name)


def check_sample_pixels(sample, dset, target, image, padkw=None):
    """Assert shape, window placement and pixels of ``sample`` against the oracle."""
    window = synthetic.expected_window(target, dset)
    outer = synthetic.padded_window(window, target.get('pad'))
    y0, y1, x0, x1 = outer
    im = np.asarray(sample['im'])
    assert im.shape == (y1 - y0, x1 - x0, image.shape[2])
    assert tuple(sample['target']['window_dims']) == (window[1] - window[0], window[3] - window[2])
    assert np.asarray(sample['params']['sample_tlbr'].to_ltrb().data).ravel().tolist() == \
        [x0, y0, x1, y1]
    assert np.asarray(sample['params']['offset']).tolist() == [-x0, -y0]
    expected = synthetic.expected_pixels(image, outer, padkw)
    assert im.dtype == expected.dtype
    np.testing.assert_array_equal(im, expected)
    return outer


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize('dset_name', DATASETS, ids=DATASET_IDS)
@pytest.mark.parametrize('kind', list(TARGETS), ids=list(TARGETS))
def test_sampler_pixels_match_independent_crop(request, sampler_factory, source_pixels,
                                               dset_name, backend, kind):
    dset = _dataset(request, dset_name)
    sampler = sampler_factory(dset, backend)
    ctx = Ctx(dset)
    target = TARGETS[kind](ctx)
    sample = sampler.load_sample(dict(target))
    gid = dset.anns[target['aid']]['image_id'] if 'aid' in target else ctx.gid
    assert sample['target']['gid'] == gid
    check_sample_pixels(sample, dset, target, source_pixels(dset, gid))


PADKWS = {
    'constant-default': None,
    'constant-77': {'mode': 'constant', 'constant_values': 77},
    'edge': {'mode': 'edge'},
    'reflect': {'mode': 'reflect'},
    'symmetric': {'mode': 'symmetric'},
    'wrap': {'mode': 'wrap'},
}

#: windows that reach out of the image: (id, fn(ctx) -> target)
EDGE_WINDOWS = {
    'top-left-corner': lambda c: {'gid': c.gid, 'slices': (slice(-9, 14), slice(-21, 5))},
    'bottom-right-pad': lambda c: {'gid': c.gid, 'cx': c.W - 3, 'cy': c.H - 2,
                                   'window_dims': (16, 20), 'pad': (6, 3)},
    'wider-than-image': lambda c: {'gid': c.gid, 'slices': (slice(40, 52), slice(-30, c.W + 45))},
    'asym-pad-inside': lambda c: {'gid': c.gid, 'slices': (slice(2, 12), slice(3, 11)),
                                  'pad': ((5, 0), (0, 9))},
}


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize('dset_name', DATASETS, ids=DATASET_IDS)
@pytest.mark.parametrize('padkw_id', list(PADKWS), ids=list(PADKWS))
@pytest.mark.parametrize('win', list(EDGE_WINDOWS), ids=list(EDGE_WINDOWS))
def test_sampler_pixels_padkw_modes(request, sampler_factory, source_pixels, dset_name,
                                    backend, padkw_id, win):
    dset = _dataset(request, dset_name)
    sampler = sampler_factory(dset, backend)
    ctx = Ctx(dset)
    target = EDGE_WINDOWS[win](ctx)
    padkw = PADKWS[padkw_id]
    if padkw is not None:
        target['padkw'] = dict(padkw)
    sample = sampler.load_sample(dict(target))
    check_sample_pixels(sample, dset, target, source_pixels(dset, ctx.gid), padkw)


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize('mode', ['edge', 'reflect'], ids=['edge', 'reflect'])
def test_sampler_pixels_data_padding_outside_image_is_documented_error(
        synth_dset, sampler_factory, backend, mode):
    """Extrapolating pad modes cannot work when no image pixel is in the window."""
    sampler = sampler_factory(synth_dset, backend)
    target = {'gid': 1, 'cx': -1000, 'cy': -1000, 'window_dims': (10, 10),
              'padkw': {'mode': mode}}
    with pytest.raises(ValueError):
        sampler.load_sample(target)


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize('dtype', [np.float32, np.float64, np.int16, 'uint16'],
                         ids=['float32', 'float64', 'int16', 'uint16-str'])
def test_sampler_pixels_dtype_cast(synth_dset, sampler_factory, source_pixels, backend, dtype):
    sampler = sampler_factory(synth_dset, backend)
    target = {'gid': 1, 'slices': (slice(-5, 30), slice(1190, 1215)), 'dtype': dtype}
    sample = sampler.load_sample(dict(target))
    image = source_pixels(synth_dset, 1)
    expected = synthetic.expected_pixels(image, (-5, 30, 1190, 1215)).astype(dtype)
    assert sample['im'].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(sample['im'], expected)


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_sampler_pixels_nodata_value_becomes_nan(synth_dset, sampler_factory, source_pixels,
                                                 backend):
    """``nodata=v``: float output, pixels equal to ``v`` and padding are NaN."""
    sampler = sampler_factory(synth_dset, backend)
    image = source_pixels(synth_dset, 1)
    outer = (-3, 40, -4, 80)
    crop = image[0:40, 0:80]
    nodata = int(crop[5, 5, 0])  # a value that really occurs in the window
    assert (crop == nodata).any()
    target = {'gid': 1, 'slices': (slice(-3, 40), slice(-4, 80)), 'nodata': nodata}
    sample = sampler.load_sample(target)
    im = sample['im']
    assert np.issubdtype(im.dtype, np.floating)
    expected = synthetic.expected_pixels(image.astype(np.float64), outer,
                                         {'mode': 'constant', 'constant_values': np.nan})
    expected[expected == nodata] = np.nan
    assert np.isnan(im[:3]).all() and np.isnan(im[:, :4]).all()
    np.testing.assert_array_equal(im, expected.astype(im.dtype))


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_sampler_pixels_nodata_float_pads_with_nan(synth_dset, sampler_factory, source_pixels,
                                                   backend):
    sampler = sampler_factory(synth_dset, backend)
    image = source_pixels(synth_dset, 2)
    H, W = image.shape[:2]
    outer = (H - 10, H + 6, W - 12, W + 2)
    target = {'gid': 2, 'slices': (slice(outer[0], outer[1]), slice(outer[2], outer[3])),
              'nodata': 'float'}
    im = sampler.load_sample(target)['im']
    assert np.issubdtype(im.dtype, np.floating)
    expected = synthetic.expected_pixels(image.astype(np.float64), outer,
                                         {'mode': 'constant', 'constant_values': np.nan})
    np.testing.assert_array_equal(im, expected.astype(im.dtype))
    assert not np.isnan(im[:10, :12]).any()


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_sampler_pixels_legacy_keyword_arguments(shapes8_dset, sampler_factory, source_pixels,
                                                 backend):
    """``load_sample(tr, pad=..., window_dims=...)`` means the same as target keys."""
    sampler = sampler_factory(shapes8_dset, backend)
    aid = sorted(shapes8_dset.anns)[3]
    sample = sampler.load_sample({'aid': aid}, pad=(4, 9), window_dims=(30, 20))
    target = {'aid': aid, 'pad': (4, 9), 'window_dims': (30, 20)}
    gid = shapes8_dset.anns[aid]['image_id']
    check_sample_pixels(sample, shapes8_dset, target, source_pixels(shapes8_dset, gid))


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize('dset_name', ['shapes8_dset', 'synth_dset'], ids=['shapes8', 'synth'])
def test_sampler_pixels_pool_items(request, sampler_factory, source_pixels, dset_name, backend):
    """Every preselected positive and negative loads the pixels of its window.

    Negatives (window without pad) contain no annotation.
    """
    dset = _dataset(request, dset_name)
    import sampler_core
    workdir = request.getfixturevalue('tmp_path') if backend else None
    sampler = sampler_core.CocoSampler(dset, backend=backend, workdir=workdir)
    n_pos, n_neg = sampler.regions.preselect(n_pos=6, n_neg=6, window_dims=(48, 40), rng=3)
    assert (n_pos, n_neg) == (6, 6)
    for index in range(n_pos + n_neg):
        sample = sampler.load_item(index, target={'pad': (3, 2), 'window_dims': (48, 40)})
        tr = sample['target']
        target = {'gid': tr['gid'], 'cx': tr['cx'], 'cy': tr['cy'], 'window_dims': (48, 40),
                  'pad': (3, 2)}
        if index < n_pos:
            # positives keep the aid and are centred on its box
            ann = dset.anns[tr['aid']]
            x, y, w, h = ann['bbox']
            assert (tr['cx'], tr['cy']) == (x + w / 2, y + h / 2)
            assert tr['aid'] in sample['annots']['aids'].tolist() or w * h == 0
        else:
            assert tr['aid'] == -1
            window = synthetic.expected_window(target, dset)
            sure, maybe = synthetic.expected_aids(dset, tr['gid'], window)
            assert not sure
        check_sample_pixels(sample, dset, target, source_pixels(dset, tr['gid']))


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_sampler_pixels_load_image_and_region(vidshapes2_dset, sampler_factory, source_pixels,
                                              backend):
    sampler = sampler_factory(vidshapes2_dset, backend)
    for gid in sorted(vidshapes2_dset.imgs):
        image = source_pixels(vidshapes2_dset, gid)
        np.testing.assert_array_equal(np.asarray(sampler.load_image(gid)), image)
        region = sampler.frames.load_region(gid, (slice(-20), slice(5, -10)))
        np.testing.assert_array_equal(region, image[:-20, 5:-10])


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_sampler_pixels_npy_cache_is_reused_and_equal(synth_dset, source_pixels, tmp_path, backend):
    """Two samplers sharing a workdir read identical pixels (second one from cache)."""
    import sampler_core
    first = sampler_core.CocoSampler(synth_dset, backend=backend, workdir=tmp_path)
    second = sampler_core.CocoSampler(synth_dset, backend=backend, workdir=tmp_path)
    target = {'gid': 3, 'slices': (slice(-4, 100), slice(400, 460))}
    a = first.load_sample(dict(target))['im']
    b = second.load_sample(dict(target))['im']
    np.testing.assert_array_equal(a, b)
    expected = synthetic.expected_pixels(source_pixels(synth_dset, 3), (-4, 100, 400, 460))
    np.testing.assert_array_equal(b, expected)
    if backend == 'npy':
        assert len(list(first.frames.cache_dpath.glob('*.npy'))) == 1
