"""Video targets: windows in video space, ``(T, H, W, C)`` pixels, per-frame annotations.

The synthetic video below has frames whose ``warp_img_to_vid`` is the identity, an
integer translation and a 2x upscale, so every video-space pixel has an exact
independent answer: with nearest-neighbour sampling, video pixel ``(x, y)`` of a
frame warped by ``x_vid = s * x_img + t`` is ``image[floor((y - ty) / s),
floor((x - tx) / s)]`` (0 outside the image). Annotation boxes are checked against
the same warp applied to the raw ``bbox`` numbers, annotation ids against a
brute-force overlap test over every annotation of the frame.
"""
from __future__ import annotations

import copy
import math
import os
import pickle

import kwcoco
import kwimage
import numpy as np
import pytest

import sampler_core

pytestmark = [
    pytest.mark.filterwarnings('ignore::FutureWarning'),
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),
]

VIDEO_HW = (64, 80)
#: (image (h, w), warp_img_to_vid as (scale, tx, ty)) of each frame of video 1
FRAMES = [
    ((64, 80), (1, 0, 0)),
    ((64, 80), (1, 7, 3)),
    ((32, 40), (2, 0, 0)),
    ((64, 80), (1, 0, 0)),
]


def make_video_dataset(dpath, seed: int = 0) -> kwcoco.CocoDataset:
    """Two videos of random RGB PNG frames; frames of video 1 have the warps of FRAMES.

    Every frame of video 1 gets three boxes (tracks 1-3) with polygons; the last frame
    of video 2 has none.
    """
    rng = np.random.RandomState(seed)
    dset = kwcoco.CocoDataset()
    dset.fpath = os.path.join(os.fspath(dpath), 'video.kwcoco.json')
    cats = [dset.add_category(name) for name in ['cat', 'dog', 'background']]
    tracks = [dset.add_track(name=f'track{i}') for i in range(1, 4)]
    vid1 = dset.add_video(name='vid1', height=VIDEO_HW[0], width=VIDEO_HW[1])
    vid2 = dset.add_video(name='vid2', height=30, width=50)
    os.makedirs(os.path.join(os.fspath(dpath), 'images'), exist_ok=True)
    specs = [(vid1, i, hw, warp) for i, (hw, warp) in enumerate(FRAMES)]
    specs += [(vid2, i, (30, 50), (1, 0, 0)) for i in range(2)]
    for vidid, frame_index, (h, w), (s, tx, ty) in specs:
        fname = f'images/v{vidid}_f{frame_index}.png'
        pixels = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
        kwimage.imwrite(os.path.join(os.fspath(dpath), fname), pixels)
        warp = {'type': 'affine', 'scale': s, 'offset': (tx, ty)}
        gid = dset.add_image(file_name=fname, video_id=vidid, frame_index=frame_index,
                             width=w, height=h, channels='r|g|b', warp_img_to_vid=warp)
        if vidid == vid2 and frame_index == 1:
            continue
        for k, tid in enumerate(tracks):
            bw, bh = rng.uniform(3, w / 2), rng.uniform(3, h / 2)
            x, y = rng.uniform(-bw / 2, w - bw / 2), rng.uniform(-bh / 2, h - bh / 2)
            if k == 0:  # integer corners: windows often end exactly on an edge
                x, y, bw, bh = float(int(x)), float(int(y)), float(int(bw)), float(int(bh))
            poly = kwimage.Boxes([[x, y, bw, bh]], 'xywh').to_polygons()[0]
            dset.add_annotation(image_id=gid, category_id=cats[k % 2], track_id=tid,
                                bbox=[x, y, bw, bh], segmentation=poly.to_coco('new'))
    return dset


@pytest.fixture(scope='module')
def video_dset(tmp_path_factory):
    return make_video_dataset(tmp_path_factory.mktemp('video'))


@pytest.fixture(scope='module')
def samplers(video_dset, tmp_path_factory):
    return {
        None: sampler_core.CocoSampler(video_dset, backend=None),
        'npy': sampler_core.CocoSampler(video_dset, backend='npy',
                                        workdir=tmp_path_factory.mktemp('work')),
    }


# --------------------------------------------------------------------------- oracles
def source(dset, gid) -> np.ndarray:
    return kwimage.imread(os.fspath(dset.get_image_fpath(gid)))


def warp_params(dset, gid):
    aff = kwimage.Affine.coerce(dset.imgs[gid]['warp_img_to_vid'])
    m = aff.matrix
    assert m[0, 1] == 0 and m[1, 0] == 0 and m[0, 0] == m[1, 1]
    return float(m[0, 0]), float(m[0, 2]), float(m[1, 2])


def oracle_frame(dset, gid, y0, y1, x0, x1, canvas: bool = True) -> np.ndarray:
    """Nearest-neighbour video-space window ``[y0, y1) x [x0, x1)`` of frame ``gid``.

    With ``canvas``, image pixels warped outside the video's ``height`` x ``width``
    are 0 too (see :func:`assert_frame_equal`).
    """
    img = source(dset, gid)
    s, tx, ty = warp_params(dset, gid)
    video = dset.index.videos[dset.imgs[gid]['video_id']]
    vys, vxs = np.arange(y0, y1), np.arange(x0, x1)
    ys = np.floor((vys - ty) / s).astype(int)
    xs = np.floor((vxs - tx) / s).astype(int)
    out = np.zeros((y1 - y0, x1 - x0, img.shape[2]), dtype=img.dtype)
    vy = (ys >= 0) & (ys < img.shape[0])
    vx = (xs >= 0) & (xs < img.shape[1])
    if canvas:
        vy &= (vys >= 0) & (vys < video['height'])
        vx &= (vxs >= 0) & (vxs < video['width'])
    out[np.ix_(vy, vx)] = img[np.ix_(ys[vy], xs[vx])]
    return out


def assert_frame_equal(frame, dset, gid, y0, y1, x0, x1) -> None:
    """Exact inside the video canvas; outside it, nodata or the frame's own pixels.

    A frame warped partly off the video canvas (here: translated by (7, 3)) keeps
    its off-canvas pixels in some windows and not in others: delayed_image's
    optimiser moves the crop below the image->video warp and does not re-apply the
    canvas bounds. Both answers are accepted off-canvas, nothing else is.
    """
    clipped = oracle_frame(dset, gid, y0, y1, x0, x1, canvas=True)
    full = oracle_frame(dset, gid, y0, y1, x0, x1, canvas=False)
    ok = (frame == clipped).all(axis=2) | (frame == full).all(axis=2)
    video = dset.index.videos[dset.imgs[gid]['video_id']]
    vys, vxs = np.arange(y0, y1), np.arange(x0, x1)
    on_canvas = ((vys >= 0) & (vys < video['height']))[:, None] & \
        ((vxs >= 0) & (vxs < video['width']))[None, :]
    np.testing.assert_array_equal(frame[on_canvas], clipped[on_canvas])
    assert ok.all(), f'frame {gid}: {int((~ok).sum())} off-canvas pixels are neither'


def oracle_aids(dset, gid, window_vid):
    """Annotations of ``gid`` with positive visible area in the video-space window."""
    s, tx, ty = warp_params(dset, gid)
    x0, y0, x1, y1 = window_vid
    return image_oracle_aids(dset, gid, ((x0 - tx) / s, (y0 - ty) / s,
                                         (x1 - tx) / s, (y1 - ty) / s))


def image_oracle_aids(dset, gid, ltrb):
    """Annotations of ``gid`` whose box has positive area inside the image-space window
    ``ltrb`` (read from the dataset's boxes, independently of the sampler)."""
    x0, y0, x1, y1 = ltrb
    out = []
    for aid in dset.index.gid_to_aids[gid]:
        x, y, w, h = dset.anns[aid]['bbox']
        iw = min(x + w, x1) - max(x, x0)
        ih = min(y + h, y1) - max(y, y0)
        if iw > 0 and ih > 0:
            out.append(aid)
    return sorted(out)


def random_window(rng, n_frames=4):
    t0 = int(rng.randint(0, n_frames))
    t1 = int(rng.randint(t0 + 1, n_frames + 1))
    h, w = (int(v) for v in rng.randint(1, 50, size=2))
    y0 = int(rng.randint(-20, VIDEO_HW[0]))
    x0 = int(rng.randint(-20, VIDEO_HW[1]))
    return {'vidid': 1, 'time_slice': slice(t0, t1),
            'space_slice': (slice(y0, y0 + h), slice(x0, x0 + w))}


# --------------------------------------------------------------------------- pixels
@pytest.mark.parametrize('backend', [None, 'npy'], ids=['backend-none', 'backend-npy'])
def test_video_frames_match_source_warped_into_video_space(video_dset, samplers, backend):
    """Every frame of a nearest-neighbour window equals the oracle warp of its source."""
    sampler = samplers[backend]
    vid_gids = list(video_dset.index.vidid_to_gids[1])
    rng = np.random.RandomState(1)
    for _ in range(30):
        target = random_window(rng)
        target['interpolation'] = 'nearest'
        if rng.rand() < 0.3:
            target['pad'] = tuple(int(v) for v in rng.randint(0, 6, size=2))
        sample = sampler.load_sample(copy.deepcopy(target))
        ph, pw = target.get('pad', (0, 0))
        sy, sx = target['space_slice']
        y0, y1, x0, x1 = sy.start - ph, sy.stop + ph, sx.start - pw, sx.stop + pw
        ts = target['time_slice']
        gids = vid_gids[ts.start:ts.stop]
        im = sample['im']
        assert im.shape == (len(gids), y1 - y0, x1 - x0, 3)
        assert im.dtype == np.uint8
        assert sample['target']['gids'] == gids
        for frame, gid in zip(im, gids):
            assert_frame_equal(frame, video_dset, gid, y0, y1, x0, x1)
        assert sample['params']['sample_tlbr'].data.tolist() == [x0, y0, x1, y1]


def test_video_linear_is_an_exact_shift_for_translated_frames(video_dset, samplers):
    """With the default (linear) interpolation, integer-translated frames are copied exactly."""
    rng = np.random.RandomState(2)
    for _ in range(15):
        target = random_window(rng)
        target['gids'] = [1, 2, 4]  # identity, translation (7, 3), identity
        target.pop('time_slice')
        sample = samplers['npy'].load_sample(target)
        sy, sx = target['space_slice']
        for frame, gid in zip(sample['im'], [1, 2, 4]):
            assert_frame_equal(frame, video_dset, gid, sy.start, sy.stop, sx.start, sx.stop)


def test_video_vidshapes_frames_equal_their_pngs():
    """kwcoco's vidshapes demo (identity warps): frames are crops of the PNG files."""
    dset = kwcoco.CocoDataset.demo('vidshapes2', num_frames=3, image_size=(48, 56))
    sampler = sampler_core.CocoSampler(dset, backend=None)
    rng = np.random.RandomState(3)
    for vidid in dset.index.videos:
        gids = list(dset.index.vidid_to_gids[vidid])
        for _ in range(5):
            y0, x0 = (int(v) for v in rng.randint(-10, 40, size=2))
            target = {'vidid': vidid, 'space_slice': (slice(y0, y0 + 20), slice(x0, x0 + 24)),
                      'channels': 'r|g|b', 'pad': (2, 3)}
            im = sampler.load_sample(target)['im']
            assert im.shape == (len(gids), 24, 30, 3)
            for frame, gid in zip(im, gids):
                img = source(dset, gid)
                want = np.zeros((24, 30, 3), dtype=np.uint8)
                ys, xs = np.arange(y0 - 2, y0 + 22), np.arange(x0 - 3, x0 + 27)
                vy, vx = (ys >= 0) & (ys < img.shape[0]), (xs >= 0) & (xs < img.shape[1])
                want[np.ix_(vy, vx)] = img[np.ix_(ys[vy], xs[vx])]
                np.testing.assert_array_equal(frame, want)


# --------------------------------------------------------------------------- annotations
def test_video_annotations_per_frame(video_dset, samplers):
    """frame_dets: one Detections per frame, boxes = warp_img_to_vid(bbox) - window corner."""
    vid_gids = list(video_dset.index.vidid_to_gids[1])
    rng = np.random.RandomState(4)
    n_checked = 0
    for _ in range(30):
        target = random_window(rng)
        sample = samplers['npy'].load_sample(copy.deepcopy(target))
        sy, sx = target['space_slice']
        window = (sx.start, sy.start, sx.stop, sy.stop)
        ts = target['time_slice']
        frame_dets = sample['annots']['frame_dets']
        assert len(frame_dets) == ts.stop - ts.start
        all_aids = []
        for idx, (dets, gid) in enumerate(zip(frame_dets, vid_gids[ts.start:ts.stop])):
            assert dets.meta['gid'] == gid and dets.meta['rel_frame_index'] == idx
            aids = dets.data['aids'].tolist()
            assert sorted(aids) == oracle_aids(video_dset, gid, window)
            s, tx, ty = warp_params(video_dset, gid)
            for aid, box, tid in zip(aids, dets.boxes.to_xywh().data, dets.data['track_ids']):
                ann = video_dset.anns[aid]
                x, y, w, h = ann['bbox']
                want = [s * x + tx - sx.start, s * y + ty - sy.start, s * w, s * h]
                np.testing.assert_allclose(box, want, atol=1e-9)
                assert tid == ann['track_id']
                n_checked += 1
            all_aids.extend(aids)
        assert sample['annots']['aids'].tolist() == all_aids
        assert sample['annots']['rel_frame_index'].tolist() == [
            i for i, d in enumerate(frame_dets) for _ in range(len(d))]
    assert n_checked > 20


def test_video_scale_warps_pixels_and_annotations(video_dset, samplers):
    """scale=2 (nearest) doubles pixels and boxes; tf_rel_to_abs maps back to video space."""
    target = {'vidid': 1, 'time_slice': slice(0, 2),
              'space_slice': (slice(5, 35), slice(-4, 36)), 'scale': 2,
              'interpolation': 'nearest'}
    sample = samplers['npy'].load_sample(copy.deepcopy(target))
    assert sample['im'].shape == (2, 60, 80, 3)
    for frame, gid in zip(sample['im'], [1, 2]):
        base = oracle_frame(video_dset, gid, 5, 35, -4, 36)
        np.testing.assert_array_equal(frame, base.repeat(2, axis=0).repeat(2, axis=1))
    tf = kwimage.Affine.coerce(sample['params']['tf_rel_to_abs'])
    for dets, gid in zip(sample['annots']['frame_dets'], [1, 2]):
        s, tx, ty = warp_params(video_dset, gid)
        for aid, box in zip(dets.data['aids'], dets.boxes.to_ltrb().data):
            x, y, w, h = video_dset.anns[int(aid)]['bbox']
            back = kwimage.Boxes(box[None], 'ltrb').warp(tf).data[0]
            np.testing.assert_allclose(back, [s * x + tx, s * y + ty, s * (x + w) + tx,
                                              s * (y + h) + ty], atol=1e-9)


# --------------------------------------------------------------------------- time
def test_video_time_slice_past_the_video_is_padded(video_dset, samplers):
    """Frames outside the video are nodata (0 for uint8) with empty detections."""
    sample = samplers['npy'].load_sample(
        {'vidid': 1, 'time_slice': slice(-1, 2), 'space_slice': (slice(0, 16), slice(0, 16)),
         'interpolation': 'nearest'})
    assert sample['target']['gids'] == [1, 2]
    assert sample['params']['frame_gids'] == [None, 1, 2]
    assert sample['im'].shape == (3, 16, 16, 3)
    assert not sample['im'][0].any()
    np.testing.assert_array_equal(sample['im'][1], oracle_frame(video_dset, 1, 0, 16, 0, 16))
    dets = sample['annots']['frame_dets']
    assert len(dets[0]) == 0 and dets[0].meta['gid'] is None

    tail = samplers[None].load_sample({'vidid': 1, 'time_slice': slice(3, 6),
                                       'channels': 'r|g|b', 'dtype': np.float32})
    assert tail['params']['frame_gids'] == [4, None, None]
    assert tail['im'].dtype == np.float32 and not tail['im'][1:].any()

    # pad=(pt, ph, pw): one frame before / after the time slice
    padded = samplers['npy'].load_sample({'vidid': 1, 'time_slice': slice(1, 3),
                                          'space_slice': (slice(0, 8), slice(0, 8)),
                                          'pad': (1, 0, 0)})
    assert padded['params']['frame_gids'] == [1, 2, 3, 4]


def test_video_explicit_gids_keep_their_order(video_dset, samplers):
    sample = samplers['npy'].load_sample(
        {'gids': [4, 1], 'space_slice': (slice(0, 10), slice(0, 12))})
    assert sample['target']['vidid'] == 1
    assert sample['target']['time_slice'] == slice(0, 2)
    np.testing.assert_array_equal(sample['im'][0], oracle_frame(video_dset, 4, 0, 10, 0, 12))
    np.testing.assert_array_equal(sample['im'][1], oracle_frame(video_dset, 1, 0, 10, 0, 12))
    assert [d.meta['gid'] for d in sample['annots']['frame_dets']] == [4, 1]


def test_video_slices_and_aid_targets(video_dset, samplers):
    """slices=(t, y, x) is time_slice + space_slice; an aid centres the window in video space."""
    sampler = samplers['npy']
    a = sampler.load_sample({'vidid': 1, 'slices': (slice(1, 3), slice(2, 20), slice(4, 30))})
    b = sampler.load_sample({'vidid': 1, 'time_slice': slice(1, 3),
                             'space_slice': (slice(2, 20), slice(4, 30))})
    np.testing.assert_array_equal(a['im'], b['im'])
    assert a['target']['slices'] == (slice(1, 3), slice(2, 20), slice(4, 30))

    aid = sorted(video_dset.index.gid_to_aids[2])[0]  # frame translated by (7, 3)
    sample = sampler.load_sample({'aid': aid, 'vidid': 1, 'time_slice': slice(1, 2),
                                  'window_dims': (16, 16)})
    x, y, w, h = video_dset.anns[aid]['bbox']
    assert sample['target']['cx'] == pytest.approx(x + w / 2 + 7)
    assert sample['target']['cy'] == pytest.approx(y + h / 2 + 3)
    assert sample['im'].shape == (1, 16, 16, 3)
    assert aid in sample['annots']['aids'].tolist()
    assert sample['annots']['aids'][sample['target']['annot_idx']] == aid


def test_video_as_xarray(samplers):
    sample = samplers['npy'].load_sample({'vidid': 1, 'time_slice': slice(0, 2),
                                          'as_xarray': True, 'channels': 'b|r'})
    im = sample['im']
    assert im.dims == ('t', 'y', 'x', 'c')
    assert im.coords['c'].values.tolist() == ['b', 'r']
    plain = samplers['npy'].load_sample({'vidid': 1, 'time_slice': slice(0, 2),
                                         'channels': 'r|g|b'})['im']
    np.testing.assert_array_equal(im.values, plain[..., [2, 0]])


# --------------------------------------------------------------------------- pad modes
@pytest.mark.parametrize('padkw', [{'mode': 'reflect'}, {'mode': 'edge'}, {'mode': 'wrap'},
                                   {'mode': 'constant', 'constant_values': 7}],
                         ids=['reflect', 'edge', 'wrap', 'constant-7'])
@pytest.mark.parametrize('backend', [None, 'npy'])
def test_video_frames_pad_with_any_numpy_mode(video_dset, samplers, padkw, backend):
    """Video 2's frames are their video space: each frame is its crop, numpy.pad'ed."""
    # a 3-frame clip of a 2-frame video (one time-padding frame), off the top-left corner
    target = {'vidid': 2, 'time_slice': slice(0, 3),
              'space_slice': (slice(-6, 20), slice(-10, 30)), 'padkw': padkw}
    sample = samplers[backend].load_sample(target)
    gids = sample['params']['frame_gids']
    assert gids[2] is None and sample['im'].shape == (3, 26, 40, 3)
    for k, gid in enumerate(gids[:2]):
        crop = source(video_dset, gid)[0:20, 0:30]
        want = np.pad(crop, [(6, 0), (10, 0), (0, 0)], **padkw)
        np.testing.assert_array_equal(sample['im'][k], want)
    assert (sample['im'][2] == 0).all()             # a time-padding frame stays nodata
    # scaled: padded in the frame's pixels, then scaled (nearest: every other pixel; an
    # even size, as delayed_image fits an odd one to the rounded output size)
    half = samplers[backend].load_sample(dict(target, scale=0.5, interpolation='nearest'))
    np.testing.assert_array_equal(half['im'][:2], sample['im'][:2, ::2, ::2])


def test_video_pad_modes_refuse_what_they_cannot_pad(samplers):
    # frames warped into their video: numpy.pad has no meaning in video space there
    with pytest.raises(ValueError, match='warp_img_to_vid'):
        samplers[None].load_sample({'vidid': 1, 'padkw': {'mode': 'reflect'}})
    with pytest.raises(ValueError, match='use_native_scale'):
        samplers[None].load_sample({'vidid': 2, 'padkw': {'mode': 'edge'},
                                    'use_native_scale': True})
    with pytest.raises(ValueError, match='needs image pixels'):
        samplers[None].load_sample({'vidid': 2, 'padkw': {'mode': 'reflect'},
                                    'space_slice': (slice(100, 120), slice(0, 10))})


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize('target, error', [
    ({'vidid': 99}, KeyError),
    ({'gids': [1, 99]}, KeyError),
    ({'gids': [1, 5]}, ValueError),                     # two videos
    ({'vidid': 1, 'gids': [5]}, ValueError),            # not a frame of the video
    ({'vidid': 1, 'time_slice': slice(2, 2)}, ValueError),
    ({'vidid': 1, 'time_slice': slice(0, 3, 0)}, ValueError),
    ({'vidid': 1, 'time_slice': 'all'}, TypeError),
    ({'gids': [1, 3], 'pad': (1, 0, 0)}, ValueError),   # time pad needs a time_slice
    ({'vidid': 1, 'padkw': {'mode': 'reflect'}}, ValueError),  # frames warped into the video
    ({'vidid': 1, 'scale': -1}, ValueError),
    ({'vidid': 1, 'interpolation': 'bicubic-ish'}, ValueError),
    ({'vidid': 1, 'channels': 'r||g'}, ValueError),
    ({'vidid': 1, 'channels': 'B1|B8'}, KeyError),     # no image has these
    ({'vidid': 1, 'slices': (slice(0, 1),) * 4}, ValueError),
    ({'vidid': 1, 'time_slice': slice(0, 2), 'window_dims': (3, 8, 8)}, ValueError),
    ({'vidid': 1, 'scale': 3000}, ValueError),          # MAX_WINDOW_PIXELS
], ids=['unknown-vidid', 'unknown-gid', 'two-videos', 'gid-not-in-video', 'empty-time',
        'zero-step', 'bad-time-type', 'time-pad-explicit-gids', 'padkw-mode', 'negative-scale',
        'interpolation', 'bad-channel-code', 'unknown-channels', 'four-slices',
        'window-dims-frames', 'too-large'])
def test_video_target_errors(samplers, target, error):
    with pytest.raises(error):
        samplers[None].load_sample(target)


# --------------------------------------------------------------------------- caches
def test_video_results_do_not_depend_on_call_order_or_pickling(video_dset, samplers,
                                                               tmp_path):
    """Cached delayed trees give the same pixels in any order, and after pickling."""
    rng = np.random.RandomState(5)
    targets = [random_window(rng) for _ in range(6)]
    for t in targets[::2]:
        t['scale'] = 0.5
    first = [samplers['npy'].load_sample(copy.deepcopy(t))['im'] for t in targets]
    fresh = sampler_core.CocoSampler(video_dset, backend='npy', workdir=tmp_path)
    again = [fresh.load_sample(copy.deepcopy(t))['im'] for t in targets[::-1]][::-1]
    clone = pickle.loads(pickle.dumps(samplers['npy']))
    cloned = [clone.load_sample(copy.deepcopy(t))['im'] for t in targets]
    for a, b, c in zip(first, again, cloned):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_video_2d_targets_keep_the_file_crop_path(samplers):
    """A plain gid target on a video frame still comes back (H, W, C) from the 2-D path."""
    from sampler_core import video
    sampler = samplers['npy']
    t = sampler._infer_target_attributes({'gid': 2, 'cx': 10, 'cy': 10, 'width': 8,
                                          'height': 6})
    assert not video.wants_delayed(sampler, t)
    assert sampler.load_sample(t)['im'].shape == (6, 8, 3)
    assert math.isclose(sampler.load_sample(dict(t, scale=0.5))['im'].shape[0], 3)


def test_video_clip_annots_and_native_scale_padding_frames(samplers):
    sample = samplers['npy'].load_sample(
        {'vidid': 1, 'time_slice': slice(-1, 3), 'space_slice': (slice(-6, 30), slice(50, 90)),
         'scale': 0.5, 'clip_annots': True})
    h, w = sample['params']['sample_dims']
    assert (h, w) == sample['im'].shape[1:3] == (18, 20)
    for full, clipped in zip(sample['annots']['frame_dets'], sample['annots']['clipped_dets']):
        assert clipped.data['aids'].tolist() == full.data['aids'].tolist()
        ltrb = clipped.boxes.to_ltrb().data
        want = full.boxes.to_ltrb().data.clip(0, [w, h, w, h])
        np.testing.assert_allclose(ltrb, want)
    jagged = samplers['npy'].load_sample(
        {'vidid': 1, 'time_slice': slice(-1, 1), 'space_slice': (slice(0, 16), slice(0, 24)),
         'use_native_scale': True})
    assert jagged['params']['frame_gids'] == [None, 1]
    pad_part, = jagged['im'][0]
    assert pad_part.shape == (16, 24, 3) and np.isnan(pad_part).all()
    assert [p.shape for p in jagged['im'][1]] == [(16, 24, 3)]


def test_video_load_annotations_of_a_window(video_dset, samplers):
    """load_annotations(target) on a 3-D target: the annotations of every frame's window."""
    target = {'vidid': 1, 'time_slice': slice(1, 4), 'space_slice': (slice(10, 40), slice(5, 50)),
              'pad': (2, 3)}
    anns = samplers[None].load_annotations(dict(target))
    want = []
    for gid in list(video_dset.index.vidid_to_gids[1])[1:4]:
        want += oracle_aids(video_dset, gid, (2, 8, 53, 42))
    assert sorted(ann['id'] for ann in anns) == sorted(want)
