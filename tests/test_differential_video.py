"""Differential tests against ndsampler 0.8.1: video, multispectral and multi-sensor data.

Both samplers share one ``kwcoco.CocoDataset`` per demo (``vidshapes2``,
``vidshapes1-msi``, ``vidshapes1-msi-multisensor``, small frames) and load a few
hundred random targets: time slices, windows partly or wholly off the frame, pads,
channel codes, ``scale`` (ours as ``(sy, sx)``, ndsampler's pairs as ``(sx, sy)``),
nearest / linear interpolation. ndsampler runs without a backend: its npy backend hands
``.npy`` paths to delayed_image, which cannot read them without GDAL. Pixels must be
identical; annotations and transforms must agree except where ``docs/design.md``
documents a difference, which is then checked precisely:

* *Channel order of* ``'<all>'``: ndsampler sorts the names, we keep the order in which
  the frames' assets list them; the same set comes back, compared after reordering.
* *Touching is not overlapping*: our aids are ndsampler's minus boxes whose visible area
  in the window is zero.
* *Windows wholly outside the frame keep their place*: ndsampler moves such a window
  (kwarray.embed_slice: pixels, ``offset``, ``sample_tlbr``, boxes); ours must be all
  nodata there instead.
* *Nearest-neighbour windows that reach past the frame, or whose scaled size is
  rounded*: delayed_image's nearest path raises IndexError or stretches the data over
  the padding / onto the rounded size in ndsampler; ours is checked against an
  independent gather instead (``tests/test_video.py``, ``tests/test_channels_scale.py``),
  here only its shape.
* ``positives_indexes`` of a sample grid: ndsampler's are off by one; ours index
  ``targets``. The grid windows themselves must be identical.
* ``use_native_scale``: ndsampler squashes all-NaN parts to 2 x 2 and its ``align``
  transforms do not match its parts; real parts must be identical, our ``align`` must
  map the window onto each part.
"""
from __future__ import annotations

import copy
import warnings

import kwcoco
import kwimage
import numpy as np
import pytest

import ndsampler
import sampler_core

pytestmark = [
    pytest.mark.filterwarnings('ignore::FutureWarning'),
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),
    pytest.mark.filterwarnings('ignore::UserWarning'),
]

DEMOS = {
    'vidshapes2': dict(num_frames=4, image_size=(96, 96)),
    'vidshapes1-msi': dict(num_frames=3, image_size=(96, 96)),
    'vidshapes1-msi-multisensor': dict(num_frames=4, image_size=(96, 96)),
}
CHANNELS = {
    'vidshapes2': [None, 'r|g|b', 'b|r', 'g'],
    'vidshapes1-msi': [None, 'B1|B8', 'B8a|B11|B1', 'B10'],
    'vidshapes1-msi-multisensor': [None, 'B1|B8', 'B8|B11', 'r|g|b', 'B11|r|disparity'],
}
N_TARGETS = 100


@pytest.fixture(scope='module', params=list(DEMOS), ids=list(DEMOS))
def pair(request, tmp_path_factory):
    key = request.param
    dset = kwcoco.CocoDataset.demo(key, **DEMOS[key])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        theirs = ndsampler.CocoSampler(dset, backend=None)
    ours = sampler_core.CocoSampler(dset, backend='npy', workdir=tmp_path_factory.mktemp('w'))
    return key, dset, theirs, ours


def random_target(rng, dset, key):
    vidid = int(rng.choice(sorted(dset.index.videos)))
    n = len(dset.index.vidid_to_gids[vidid])
    t0 = int(rng.randint(0, n))
    t1 = int(rng.randint(t0 + 1, n + 1))
    h, w = (int(v) for v in rng.randint(4, 70, size=2))
    y0, x0 = (int(v) for v in rng.randint(-40, 100, size=2))
    target = {'vidid': vidid, 'time_slice': slice(t0, t1),
              'space_slice': (slice(y0, y0 + h), slice(x0, x0 + w))}
    channels = CHANNELS[key][rng.randint(len(CHANNELS[key]))]
    if channels is not None:
        target['channels'] = channels
    scale = [None, None, 0.5, 2, 1.3, (2.0, 0.5)][rng.randint(6)]
    if scale is not None:
        target['scale'] = scale
    if rng.rand() < 0.25:
        target['interpolation'] = 'nearest'
    if rng.rand() < 0.2:
        target['pad'] = (int(rng.randint(0, 5)), int(rng.randint(0, 5)))
    return target


def their_target(target):
    out = copy.deepcopy(target)
    if isinstance(out.get('scale'), tuple):  # ndsampler hands pairs to kwimage as (sx, sy)
        out['scale'] = out['scale'][::-1]
    if 'pad' in out and len(out['pad']) == 2:  # ndsampler wants (pt, ph, pw) for videos
        out['pad'] = (0,) + tuple(out['pad'])
    return out


def names_of(spec) -> list:
    return [] if spec is None else spec.fuse().normalize().as_list()


def window_of(target):
    (sy, sx), pad = target['space_slice'], target.get('pad', (0, 0))
    return sx.start - pad[1], sy.start - pad[0], sx.stop + pad[1], sy.stop + pad[0]


def rounded_nearest(target) -> bool:
    """Nearest with a scale under which the window is not a whole number of pixels."""
    if target.get('interpolation') != 'nearest' or target.get('scale') is None:
        return False
    scale = target['scale']
    sy, sx = scale if isinstance(scale, tuple) else (scale, scale)
    x0, y0, x1, y1 = window_of(target)
    return not (float((y1 - y0) * sy).is_integer() and float((x1 - x0) * sx).is_integer())


def wholly_outside(window, dims) -> bool:
    x0, y0, x1, y1 = window
    h, w = dims
    return x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h


def test_differential_video_targets(pair):
    key, dset, theirs, ours = pair
    rng = np.random.RandomState(0)
    n_pixels = n_boxes = n_nearest_past = 0
    for _ in range(N_TARGETS):
        target = random_target(rng, dset, key)
        video = dset.index.videos[target['vidid']]
        dims = (video['height'], video['width'])
        window = window_of(target)
        mine = ours.load_sample(copy.deepcopy(target))
        nearest_past = target.get('interpolation') == 'nearest' and (
            window[0] < 0 or window[1] < 0 or window[2] > dims[1] or window[3] > dims[0])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                ref = theirs.load_sample(their_target(target))
        except Exception:  # IndexError, or cv2 resizing an empty array
            assert nearest_past, f'ndsampler failed on {target}'
            ref = None
        if ref is None or nearest_past or rounded_nearest(target):
            n_nearest_past += 1
            sy, sx = (1, 1) if 'scale' not in target else (
                target['scale'] if isinstance(target['scale'], tuple) else (target['scale'],) * 2)
            t = target['time_slice']
            want_h = int(np.ceil((window[3] - window[1]) * sy))
            assert mine['im'].shape[:2] == (t.stop - t.start, want_h)
            continue
        sy, sx = target['space_slice']
        if wholly_outside((sx.start, sy.start, sx.stop, sy.stop), dims) or \
                wholly_outside(window, dims):
            # ndsampler moves such windows (kwarray.embed_slice); ours stay in place
            if wholly_outside(window, dims):
                assert not np.nan_to_num(np.asarray(mine['im'], dtype=np.float64)).any()
            continue
        n_pixels += 1
        # ---- pixels (channels aligned by name)
        got = np.asarray(mine['im'], dtype=np.float64)
        want = np.asarray(ref['im'], dtype=np.float64)
        their_names = names_of(ref['params']['request_chanspec'])
        our_names = mine['params']['channels']
        assert sorted(our_names) == sorted(their_names)
        got = got[..., [our_names.index(c) for c in their_names]]
        assert got.shape == want.shape, target
        if 'channels' in target or key != 'vidshapes1-msi-multisensor':
            np.testing.assert_array_equal(got, want, err_msg=str(target))
        else:
            # '<all>' in ndsampler's sorted order splits multi-band assets into other
            # delayed_image warps (other rounding): compare NaNs here, and pixels for the
            # very same request in ndsampler's order
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            same = ours.load_sample(dict(copy.deepcopy(target), channels='|'.join(their_names)))
            np.testing.assert_array_equal(np.asarray(same['im'], dtype=np.float64), want)
        # ---- transforms and annotations
        np.testing.assert_allclose(mine['params']['tf_rel_to_abs'], ref['params']['tf_rel_to_abs'])
        assert mine['params']['sample_tlbr'].data.tolist() == \
            np.asarray(ref['params']['sample_tlbr'].data).ravel().tolist()
        assert len(mine['annots']['frame_dets']) == len(ref['annots']['frame_dets'])
        for a, b in zip(mine['annots']['frame_dets'], ref['annots']['frame_dets']):
            assert a.meta['gid'] == b.meta['gid']
            mine_aids, their_aids = a.data['aids'].tolist(), b.data['aids'].tolist()
            assert set(mine_aids) <= set(their_aids)
            for aid in set(their_aids) - set(mine_aids):  # touching only
                x, y, w, h = dset.anns[aid]['bbox']
                iw = min(x + w, window[2]) - max(x, window[0])
                ih = min(y + h, window[3]) - max(y, window[1])
                assert iw <= 0 or ih <= 0, (aid, target)
            for k, aid in enumerate(mine_aids):
                j = their_aids.index(aid)
                np.testing.assert_allclose(a.boxes.to_ltrb().data[k], b.boxes.to_ltrb().data[j],
                                           atol=1e-9)
                n_boxes += 1
    assert n_pixels >= N_TARGETS // 2
    assert n_boxes > 0


def test_differential_sample_grids(pair):
    key, dset, theirs, ours = pair
    for dims, overlap in [((2, 32, 40), 0.0), ((3, 48, 48), 0.5)]:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            ref = theirs.new_sample_grid('video_detection', dims, overlap)
        mine = ours.new_sample_grid('video_detection', dims, overlap)
        assert len(mine['targets']) == len(ref['targets'])
        for a, b in zip(mine['targets'], ref['targets']):
            assert (a['vidid'], a['time_slice'], a['space_slice'], a['gids']) == \
                (b['vidid'], b['time_slice'], tuple(b['space_slice']), list(b['gids']))
            assert set(a['aids']) <= set(b['aids'])
        pos = {id(t) for t in mine['positives']}
        assert [i for i, t in enumerate(mine['targets']) if id(t) in pos] == \
            mine['positives_indexes']
        assert [i - 1 for i in ref['positives_indexes']] == mine['positives_indexes'] or \
            len(mine['positives']) <= len(ref['positives'])
    image_ref = theirs.new_sample_grid('image_detection', (40, 40), 0.25)
    image_mine = ours.new_sample_grid('image_detection', (40, 40), 0.25)
    assert [(t['gid'], t['slices']) for t in image_mine['targets']] == \
        [(t['gid'], tuple(t['slices'])) for t in image_ref['targets']]


def test_differential_jagged_parts(pair):
    key, dset, theirs, ours = pair
    target = {'vidid': 1, 'time_slice': slice(0, 2), 'space_slice': (slice(12, 60), slice(6, 66)),
              'channels': CHANNELS[key][1], 'use_native_scale': True, 'scale': 2}
    ref = theirs.load_sample(copy.deepcopy(target))
    mine = ours.load_sample(copy.deepcopy(target))
    if 'msi' not in key:  # one file per frame: the single part is the aligned sample
        plain = ours.load_sample(dict(copy.deepcopy(target), use_native_scale=False))
        assert [len(f) for f in mine['im']] == [1, 1]
        np.testing.assert_array_equal(np.stack([f[0] for f in mine['im']]), plain['im'])
    for f_mine, f_ref, m_mine, m_ref in zip(mine['im'], ref['im'], mine['params']['jagged_meta'],
                                            ref['params']['jagged_meta']):
        assert [c.spec for c in m_mine['chans']] == [c.spec for c in m_ref['chans']]
        for p_mine, p_ref, a_mine in zip(f_mine, f_ref, m_mine['align']):
            if np.isnan(p_mine).all():  # ndsampler squashes all-NaN parts to 2 x 2
                continue
            np.testing.assert_array_equal(p_mine, p_ref)
            # ndsampler's 'align' does not describe its own parts (a 96 x 120 part gets
            # 1/60, 1/48); ours maps the scaled 96 x 120 window onto each part (the
            # part is the bounding box of the warped window)
            corners = kwimage.Coords(np.array([[0, 0], [120, 0], [0, 96], [120, 96]], float))
            xy = corners.warp(kwimage.Affine.coerce(a_mine)).data
            extent = xy.max(axis=0) - xy.min(axis=0)
            assert np.abs(extent - [p_mine.shape[1], p_mine.shape[0]]).max() <= 2
    for a, b in zip(mine['annots']['frame_dets'], ref['annots']['frame_dets']):
        common = sorted(set(a.data['aids'].tolist()) & set(b.data['aids'].tolist()))
        for aid in common:
            i, j = a.data['aids'].tolist().index(aid), b.data['aids'].tolist().index(aid)
            np.testing.assert_allclose(a.boxes.to_ltrb().data[i], b.boxes.to_ltrb().data[j])
