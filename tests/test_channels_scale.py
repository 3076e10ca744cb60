"""Channels, multi-asset images, ``scale``, ``use_native_scale``, interpolation, nodata.

Oracles: kwcoco's ``vidshapes1-msi`` demo at 96 x 96 stores ``B1`` / ``B10`` at full
resolution and ``B8`` at 1/6 (``warp_aux_to_img`` = scale 6), so with nearest
sampling a window's ``B8`` pixel ``(x, y)`` is ``asset[floor(y / 6), floor(x / 6)]``,
read straight from the TIFF. Integer upscales are ``np.repeat``, 2x area downscales
are block means. The seed's multispectral / multi-sensor examples run as written.
"""
from __future__ import annotations

import math

import os
import warnings

import kwcoco
import kwimage
import numpy as np
import pytest

import sampler_core
from sampler_core import video

pytestmark = [
    pytest.mark.filterwarnings('ignore::FutureWarning'),
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),
    pytest.mark.filterwarnings('ignore:channels .* exist in no image:UserWarning'),
]


@pytest.fixture(scope='module')
def msi_dset():
    return kwcoco.CocoDataset.demo('vidshapes1-msi', num_frames=2, image_size=(96, 96))


@pytest.fixture(scope='module')
def msi_sampler(msi_dset, tmp_path_factory):
    return sampler_core.CocoSampler(msi_dset, backend='npy',
                                    workdir=tmp_path_factory.mktemp('msi'))


@pytest.fixture(scope='module')
def multisensor_sampler():
    dset = kwcoco.CocoDataset.demo('vidshapes1-msi-multisensor', num_frames=3,
                                   image_size=(96, 96))
    return sampler_core.CocoSampler(dset, backend=None)


@pytest.fixture(scope='module')
def shapes_sampler(tmp_path_factory):
    return sampler_core.CocoSampler(kwcoco.CocoDataset.demo('shapes8'), backend='npy',
                                    workdir=tmp_path_factory.mktemp('shapes'))


def asset(dset, gid, channel) -> np.ndarray:
    for obj in dset.coco_image(gid).iter_asset_objs():
        if obj['channels'] == channel:
            data = kwimage.imread(os.path.join(dset.bundle_dpath, obj['file_name']))
            return data if data.ndim == 3 else data[:, :, None]
    raise KeyError(channel)


def nearest_window(data, factor, y0, y1, x0, x1) -> np.ndarray:
    """Window of ``data`` upsampled by an integer ``factor`` (nearest), 0 outside."""
    ys = np.floor(np.arange(y0, y1) / factor).astype(int)
    xs = np.floor(np.arange(x0, x1) / factor).astype(int)
    out = np.zeros((y1 - y0, x1 - x0, data.shape[2]), dtype=data.dtype)
    vy = (ys >= 0) & (ys < data.shape[0])
    vx = (xs >= 0) & (xs < data.shape[1])
    out[np.ix_(vy, vx)] = data[np.ix_(ys[vy], xs[vx])]
    return out


# --------------------------------------------------------------------------- seed examples
def test_seed_multispectral_example():
    self = sampler_core.CocoSampler.demo('vidshapes1-multispectral', num_frames=5)
    sample_grid = self.new_sample_grid('video_detection', (3, 128, 128))
    target = sample_grid['positives'][0]
    target['channels'] = 'B1|B8'
    target['as_xarray'] = False
    sample = self.load_sample(target)
    assert sample['im'].shape == (3, 128, 128, 2)
    target['channels'] = '<all>'
    sample = self.load_sample(target)
    assert sample['im'].shape == (3, 128, 128, 5)


def test_seed_multisensor_jagged_example():
    self = sampler_core.CocoSampler.demo('vidshapes1-msi-multisensor', num_frames=5)
    sample_grid = self.new_sample_grid('video_detection', (3, 128, 128))
    target = sample_grid['positives'][0]
    target['channels'] = 'B1|B8'
    target['as_xarray'] = False
    sample1 = self.load_sample(target)
    target['scale'] = 2
    sample2 = self.load_sample(target)
    target['use_native_scale'] = True
    sample3 = self.load_sample(target)
    assert sample1['im'].shape == (3, 128, 128, 2)
    assert sample2['im'].shape == (3, 256, 256, 2)
    box1 = sample1['annots']['frame_dets'][0].boxes
    box2 = sample2['annots']['frame_dets'][0].boxes
    box3 = sample3['annots']['frame_dets'][0].boxes
    assert len(box1) > 0
    assert np.allclose((box2.width / box1.width), 2)
    assert np.allclose((box3.width / box1.width), 2)
    jagged_shape = [[p.shape for p in f] for f in sample3['im']]
    jagged_align = [[a for a in m['align']] for m in sample3['params']['jagged_meta']]
    # every frame holds both requested channels, split over its parts
    assert [sum(s[2] for s in frame) for frame in jagged_shape] == [2, 2, 2]
    assert [len(a) for a in jagged_align] == [len(f) for f in jagged_shape]
    for frame, meta in zip(sample3['im'], sample3['params']['jagged_meta']):
        for part, align, chans in zip(frame, meta['align'], meta['chans']):
            # align maps the (scaled) 256 x 256 sample onto the part's pixels: the
            # warped window's bounding box is the part (up to rounding)
            corners = kwimage.Coords(np.array([[0, 0], [256, 0], [0, 256], [256, 256]], float))
            xy = corners.warp(kwimage.Affine.coerce(align)).data
            extent = xy.max(axis=0) - xy.min(axis=0)
            assert np.abs(extent - [part.shape[1], part.shape[0]]).max() <= 2
            assert chans.numel() == part.shape[2]


# --------------------------------------------------------------------------- channels
def test_msi_channels_match_their_assets(msi_dset, msi_sampler):
    """Each requested band equals its own asset, resampled into video space (nearest)."""
    rng = np.random.RandomState(0)
    factors = {'B1': 1, 'B10': 1, 'B8': 6, 'B8a': 3, 'B11': 3}
    for _ in range(12):
        names = list(rng.choice(list(factors), size=rng.randint(1, 4), replace=False))
        y0, x0 = (int(v) for v in rng.randint(-20, 90, size=2))
        h, w = (int(v) for v in rng.randint(1, 40, size=2))
        target = {'vidid': 1, 'channels': '|'.join(names), 'interpolation': 'nearest',
                  'space_slice': (slice(y0, y0 + h), slice(x0, x0 + w))}
        sample = msi_sampler.load_sample(target)
        assert sample['im'].shape == (2, h, w, len(names))
        assert sample['params']['channels'] == names
        for t, gid in enumerate([1, 2]):
            for c, name in enumerate(names):
                want = nearest_window(asset(msi_dset, gid, name), factors[name],
                                      y0, y0 + h, x0, x0 + w)[:, :, 0]
                np.testing.assert_array_equal(sample['im'][t, :, :, c], want)


def test_all_channels_in_asset_order(msi_sampler):
    sample = msi_sampler.load_sample({'vidid': 1, 'channels': '<all>',
                                      'space_slice': (slice(0, 8), slice(0, 8))})
    assert sample['params']['channels'] == ['B1', 'B8', 'B8a', 'B10', 'B11']
    default = msi_sampler.load_sample({'vidid': 1, 'space_slice': (slice(0, 8), slice(0, 8))})
    np.testing.assert_array_equal(default['im'], sample['im'])


def test_missing_channels_are_nan_never_an_error(multisensor_sampler):
    """B8 exists in some frames only, B1 in none: NaN there, real values elsewhere."""
    sampler = multisensor_sampler
    dset = sampler.dset
    with pytest.warns(UserWarning, match='exist in no image'):
        video._state(sampler.frames).warned.clear()
        video._state(sampler.frames).checked.clear()
        both = sampler.load_sample({'vidid': 1, 'channels': 'B1|B8'})
    im = both['im']
    assert im.dtype == np.float32 and im.shape[-1] == 2
    assert np.isnan(im[..., 0]).all()
    for t, gid in enumerate(both['target']['gids']):
        has_b8 = 'B8' in video._state(sampler.frames).channel_names(gid)
        assert np.isfinite(im[t, ..., 1]).any() == has_b8
    b8 = sampler.load_sample({'vidid': 1, 'channels': 'B8'})['im']
    finite = np.isfinite(b8)
    np.testing.assert_array_equal(im[..., 1:][finite], b8[finite])
    # a channel every frame has keeps the native dtype
    b11 = sampler.load_sample({'vidid': 1, 'channels': 'B11'})['im']
    assert b11.dtype == np.uint16 and b11.shape == (3, 96, 96, 1)
    assert len({frozenset(video._state(sampler.frames).channel_names(g))
                for g in dset.imgs}) > 1


def test_unknown_channels_for_the_whole_dataset_are_a_clear_error(msi_sampler,
                                                                   shapes_sampler):
    with pytest.raises(KeyError, match='no image of this dataset'):
        msi_sampler.load_sample({'vidid': 1, 'channels': 'r|g|b'})
    with pytest.raises(KeyError, match='no image of this dataset'):
        shapes_sampler.load_sample({'gid': 1, 'channels': 'B1'})
    with pytest.raises(ValueError):
        msi_sampler.load_sample({'vidid': 1, 'channels': 'B1|B1'})
    with pytest.raises(TypeError):
        msi_sampler.load_sample({'vidid': 1, 'channels': 3.5})


def test_2d_image_missing_a_channel_gets_nan(shapes_sampler):
    """A plain RGB image asked for 'r|B9' (B9 unknown, r known): r is exact, B9 is NaN."""
    target = {'gid': 1, 'cx': 50, 'cy': 60, 'width': 20, 'height': 10}
    plain = shapes_sampler.load_sample(dict(target))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        mixed = shapes_sampler.load_sample(dict(target, channels='r|B9'))
    assert mixed['im'].shape == (10, 20, 2) and mixed['im'].dtype == np.float32
    np.testing.assert_array_equal(mixed['im'][..., 0], plain['im'][..., 0])
    assert np.isnan(mixed['im'][..., 1]).all()
    np.testing.assert_array_equal(mixed['annots']['aids'], plain['annots']['aids'])


def test_multi_asset_2d_targets_and_frames_api(msi_dset, tmp_path):
    """gid targets on multi-asset images, load_image / load_region, lazy per-asset cache."""
    sampler = sampler_core.CocoSampler(msi_dset, backend='npy', workdir=tmp_path)
    cache = sampler.frames.cache_dpath
    assert not cache.exists() or not list(cache.glob('*.npy'))
    sample = sampler.load_sample({'gid': 2, 'channels': 'B1', 'pad': (2, 3),
                                  'space_slice': (slice(10, 30), slice(40, 60))})
    assert sample['im'].shape == (24, 26, 1)
    np.testing.assert_array_equal(sample['im'][..., 0], nearest_window(
        asset(msi_dset, 2, 'B1'), 1, 8, 32, 37, 63)[..., 0])
    assert len(list(cache.glob('*.npy'))) == 1  # only the asset that was needed
    full = sampler.frames.load_image(2)
    assert full.shape == (96, 96, 5)
    np.testing.assert_array_equal(sampler.frames.load_region(2, (slice(5, 9), slice(-10, None)),
                                                             channels='B10'),
                                  full[5:9, -10:, 3:4])
    sampler.frames.prepare(verbose=0)
    n_assets = sum(len(sampler.frames.asset_fpaths(g)) for g in msi_dset.imgs)
    assert len(list(cache.glob('*.npy'))) == n_assets
    assert sampler.load_image(1).shape == (96, 96, 5)


# --------------------------------------------------------------------------- scale
def test_scale_integer_upsample_is_exact(shapes_sampler):
    sampler = shapes_sampler
    target = {'gid': 2, 'space_slice': (slice(-5, 30), slice(100, 140))}
    base = sampler.load_sample(dict(target))
    up = sampler.load_sample(dict(target, scale=3, interpolation='nearest'))
    np.testing.assert_array_equal(up['im'], base['im'].repeat(3, axis=0).repeat(3, axis=1))
    # (sy, sx) order: rows doubled, columns kept
    tall = sampler.load_sample(dict(target, scale=(2, 1), interpolation='nearest'))
    np.testing.assert_array_equal(tall['im'], base['im'].repeat(2, axis=0))
    for big, sy, sx in [(up, 3, 3), (tall, 2, 1)]:
        np.testing.assert_array_equal(big['annots']['aids'], base['annots']['aids'])
        want = base['annots']['rel_boxes'].to_ltrb().data * [sx, sy, sx, sy]
        np.testing.assert_allclose(big['annots']['rel_boxes'].to_ltrb().data, want)


@pytest.mark.parametrize('scale', [0.5, 0.3, 1.5, (0.5, 2)])
def test_scale_nearest_is_the_transform_for_any_window_size(shapes_sampler, scale):
    # odd sizes: the output size is rounded, the pixels still follow tf_rel_to_abs
    y0, x0 = 101, 57
    sample = shapes_sampler.load_sample({'gid': 1, 'scale': scale, 'interpolation': 'nearest',
                                         'space_slice': (slice(y0, y0 + 41), slice(x0, x0 + 39))})
    im = sample['im']
    sy, sx = (scale, scale) if np.ndim(scale) == 0 else scale
    assert im.shape[:2] == (math.ceil(41 * sy - 1e-9), math.ceil(39 * sx - 1e-9))
    src = np.asarray(shapes_sampler.load_image(1))
    rows = y0 + np.floor(np.arange(im.shape[0]) / sy).astype(int)
    cols = x0 + np.floor(np.arange(im.shape[1]) / sx).astype(int)
    np.testing.assert_array_equal(im, src[np.ix_(rows, cols)])
    # the same mapping as params['tf_rel_to_abs'] gives for pixel corners
    tf = sample['params']['tf_rel_to_abs']
    np.testing.assert_allclose(tf[:2, :2], np.diag([1 / sx, 1 / sy]))
    np.testing.assert_allclose(tf[:2, 2], [x0, y0])


PAD_MODES = [{'mode': 'reflect'}, {'mode': 'edge'}, {'mode': 'symmetric'}, {'mode': 'wrap'},
             {'mode': 'constant', 'constant_values': 255}]


@pytest.mark.parametrize('padkw', PAD_MODES, ids=[str(p) for p in PAD_MODES])
def test_scale_pads_like_the_2d_path_then_scales(shapes_sampler, padkw):
    # past the top and the right of the 600x600 image
    target = {'gid': 2, 'space_slice': (slice(-12, 40), slice(570, 620)), 'padkw': padkw}
    base = shapes_sampler.load_sample(dict(target))['im']
    assert base.shape == (52, 50, 3)
    up = shapes_sampler.load_sample(dict(target, scale=3, interpolation='nearest'))['im']
    np.testing.assert_array_equal(up, base.repeat(3, axis=0).repeat(3, axis=1))
    half = shapes_sampler.load_sample(dict(target, scale=0.5, interpolation='nearest'))['im']
    np.testing.assert_array_equal(half, base[::2, ::2])
    # linear: inside the image, away from its edge, the pixels of the nodata fill
    lin = shapes_sampler.load_sample(dict(target, scale=0.5))['im']
    nodata = shapes_sampler.load_sample({'gid': 2, 'space_slice': target['space_slice'],
                                         'scale': 0.5})['im']
    assert lin.shape == nodata.shape == (26, 25, 3)
    np.testing.assert_array_equal(lin[8:, :14], nodata[8:, :14])


def test_scale_pad_modes_refuse_what_they_cannot_pad(shapes_sampler, msi_sampler):
    reflect = {'mode': 'reflect'}
    with pytest.raises(ValueError, match='several assets'):
        msi_sampler.load_sample({'gid': 1, 'space_slice': (slice(-4, 20), slice(0, 20)),
                                 'channels': 'B1', 'scale': 0.5, 'padkw': reflect})
    with pytest.raises(ValueError, match='lacks some of the channels'):
        shapes_sampler.load_sample({'gid': 1, 'space_slice': (slice(-4, 20), slice(0, 20)),
                                    'channels': 'r|B1', 'padkw': reflect})
    with pytest.raises(ValueError, match='needs image pixels'):
        shapes_sampler.load_sample({'gid': 1, 'space_slice': (slice(-40, -20), slice(0, 20)),
                                    'scale': 2, 'padkw': reflect})


def test_scale_half_area_is_block_mean(shapes_sampler):
    target = {'gid': 3, 'space_slice': (slice(40, 104), slice(10, 90))}
    base = shapes_sampler.load_sample(dict(target))['im'].astype(np.float64)
    half = shapes_sampler.load_sample(dict(target, scale=0.5, interpolation='area',
                                           antialias=False))['im']
    assert half.shape == (32, 40, 3)
    blocks = base.reshape(32, 2, 40, 2, 3).mean(axis=(1, 3))
    assert np.abs(half.astype(np.float64) - blocks).max() <= 1.0


def test_scale_box_ratio_on_positives(shapes_sampler):
    for index in range(5):
        t = shapes_sampler.regions.get_positive(index)
        t['window_dims'] = (64, 64)
        one = shapes_sampler.load_sample(dict(t))
        two = shapes_sampler.load_sample(dict(t, scale=2))
        assert two['im'].shape == (128, 128, 3)
        np.testing.assert_allclose(two['annots']['rel_boxes'].width,
                                   2 * one['annots']['rel_boxes'].width)
        assert two['target']['rel_cx'] == pytest.approx(2 * one['target']['rel_cx'])


def test_native_scale_parts_are_raw_asset_crops(msi_dset, msi_sampler):
    """Window on multiples of 6: every native part is an exact crop of its asset."""
    y0, y1, x0, x1 = 12, 60, 24, 72
    target = {'vidid': 1, 'space_slice': (slice(y0, y1), slice(x0, x1)),
              'use_native_scale': True, 'as_xarray': True}
    sample = msi_sampler.load_sample(target)
    factors = {'B1': 1, 'B8': 6, 'B8a': 3, 'B10': 1, 'B11': 3}
    assert len(sample['im']) == 2
    for gid, frame, meta in zip([1, 2], sample['im'], sample['params']['jagged_meta']):
        names = [c.spec for c in meta['chans']]
        assert names == list(factors)
        for part, name, align in zip(frame, names, meta['align']):
            f = factors[name]
            assert part.dims == ('y', 'x', 'c') and part.coords['c'].values.tolist() == [name]
            raw = asset(msi_dset, gid, name)[y0 // f:y1 // f, x0 // f:x1 // f]
            np.testing.assert_array_equal(part.values, raw)
            np.testing.assert_allclose(kwimage.Affine.coerce(align).matrix[:2, :2],
                                       np.eye(2) / f)
    # annotations stay in the (unscaled) window
    plain = msi_sampler.load_sample({'vidid': 1, 'space_slice': (slice(y0, y1), slice(x0, x1))})
    np.testing.assert_allclose(sample['annots']['rel_boxes'].data,
                               plain['annots']['rel_boxes'].data)


def test_2d_native_scale_is_a_list_of_parts(msi_sampler):
    sample = msi_sampler.load_sample({'gid': 1, 'channels': 'B8|B1',
                                      'space_slice': (slice(0, 48), slice(0, 36)),
                                      'use_native_scale': True})
    assert [p.shape for p in sample['im']] == [(8, 6, 1), (48, 36, 1)]
    assert [c.spec for c in sample['params']['jagged_meta']['chans']] == ['B8', 'B1']


# --------------------------------------------------------------------------- options
def test_interpolation_and_antialias_defaults():
    assert video.coerce_interpolation() == ('linear', True)
    assert video.coerce_interpolation('auto', 'auto') == ('linear', True)
    assert video.coerce_interpolation('nearest', 'auto') == ('nearest', False)
    assert video.coerce_interpolation('cubic', False) == ('cubic', False)
    with pytest.raises(ValueError):
        video.coerce_interpolation('linear', 'maybe')


def test_antialias_changes_downscaled_pixels(shapes_sampler):
    target = {'gid': 1, 'space_slice': (slice(0, 200), slice(0, 200)), 'scale': 0.25}
    smooth = shapes_sampler.load_sample(dict(target))['im'].astype(int)
    sharp = shapes_sampler.load_sample(dict(target, antialias=False))['im'].astype(int)
    assert smooth.shape == sharp.shape == (50, 50, 3)
    assert (smooth != sharp).any()


def test_nodata_values_become_nan_before_warping(msi_sampler, msi_dset):
    b1 = asset(msi_dset, 1, 'B1')[:, :, 0]
    value = int(np.bincount(b1.ravel()).argmax())
    sample = msi_sampler.load_sample({'gid': 1, 'channels': 'B1', 'nodata': value})
    im = sample['im'][..., 0]
    assert im.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(im), b1 == value)
    cast = msi_sampler.load_sample({'gid': 1, 'channels': 'B1|B9', 'dtype': np.int32})
    assert cast['im'].dtype == np.int32 and not cast['im'][..., 1].any()
