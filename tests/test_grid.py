"""Sample grids: coverage, overlap, border handling, positives vs negatives.

Properties are checked along one axis with hypothesis (every pixel covered, the
requested overlap between neighbours, nothing outside the image for ``'shift'``),
then on whole datasets: a coverage mask per image, and the positive / negative split
against a brute-force overlap test of every window with every annotation.
"""
from __future__ import annotations

import os

import kwcoco
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sampler_core
from sampler_core.grid import (new_image_sample_grid, new_sample_grid, pairwise_visible,
                               window_starts, window_stride)

pytestmark = [
    pytest.mark.filterwarnings('ignore::FutureWarning'),
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),
]

EDGES = ['shift', 'pad', 'drop']


# --------------------------------------------------------------------------- one axis
@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 400), window=st.integers(1, 120),
       overlap=st.floats(0, 0.95), edge=st.sampled_from(EDGES))
def test_grid_window_starts_properties(length, window, overlap, edge):
    try:
        stride = window_stride(window, overlap)
    except ValueError:
        with pytest.raises(ValueError):
            window_starts(length, window, overlap, edge)
        return
    starts = window_starts(length, window, overlap, edge).tolist()
    assert len(starts) >= 1 and starts[0] == 0
    assert starts == sorted(set(starts))
    if length <= window:
        assert starts == [0]  # one (padded) window, never none
        return
    steps = np.diff(starts).tolist()
    covered = np.zeros(length, dtype=bool)
    for s in starts:
        covered[s:s + window] = True
    if edge in ('shift', 'pad'):
        assert covered.all()
    if edge == 'shift':
        assert all(s + window <= length for s in starts)
        assert starts[-1] + window == length
        assert all(d == stride for d in steps[:-1]) and (not steps or steps[-1] <= stride)
    if edge == 'pad':
        assert all(d == stride for d in steps)
        assert starts[-1] < length and starts[-1] + window >= length
        assert len(starts) == 1 or starts[-2] + window < length
    if edge == 'drop':
        assert all(s + window <= length for s in starts)
        assert all(d == stride for d in steps)
        assert starts[-1] + stride + window > length  # no other window would fit
    # neighbours share exactly round(window * overlap) cells (shift's last: at least)
    want = window - stride
    assert window_stride(window, overlap) == int(round(window - window * overlap))
    shared = [window - d for d in steps]
    if edge == 'shift' and shared:
        assert all(v == want for v in shared[:-1]) and shared[-1] >= want
    else:
        assert all(v == want for v in shared)


def test_grid_window_starts_examples():
    assert window_starts(10, 4).tolist() == [0, 4, 6]
    assert window_starts(10, 4, edge='pad').tolist() == [0, 4, 8]
    assert window_starts(10, 4, edge='drop').tolist() == [0, 4]
    assert window_starts(600, 128, 0.5).tolist() == [0, 64, 128, 192, 256, 320, 384, 448, 472]
    for edge in EDGES:
        assert window_starts(3, 10, edge=edge).tolist() == [0]


# --------------------------------------------------------------------------- datasets
def make_grid_dataset(dpath) -> kwcoco.CocoDataset:
    """Images of awkward sizes (one smaller than the windows), boxes, a background box."""
    rng = np.random.RandomState(0)
    dset = kwcoco.CocoDataset()
    dset.fpath = os.path.join(os.fspath(dpath), 'grid.kwcoco.json')
    cat = dset.add_category('thing')
    bg = dset.add_category('background')
    for h, w in [(97, 131), (64, 64), (20, 15), (150, 90)]:
        gid = dset.add_image(file_name=f'img_{h}x{w}.png', width=w, height=h)
        for _ in range(4):
            bw, bh = rng.randint(1, 30, size=2)
            x, y = rng.randint(-10, w), rng.randint(-10, h)
            dset.add_annotation(image_id=gid, category_id=cat,
                                bbox=[int(x), int(y), int(bw), int(bh)])
        dset.add_annotation(image_id=gid, category_id=bg, bbox=[0, 0, 5, 5])
    return dset


@pytest.fixture(scope='module')
def grid_dset(tmp_path_factory):
    return make_grid_dataset(tmp_path_factory.mktemp('grid'))


def oracle_split(dset, gid, box_ltrb):
    """(overlapping aids, positive?) of one window by brute force."""
    x0, y0, x1, y1 = box_ltrb
    aids, positive = [], False
    for aid in dset.index.gid_to_aids[gid]:
        ann = dset.anns[aid]
        bx, by, bw, bh = ann['bbox']
        iw = min(bx + bw, x1) - max(bx, x0)
        ih = min(by + bh, y1) - max(by, y0)
        if iw > 0 and ih > 0:
            aids.append(aid)
            positive |= dset.cats[ann['category_id']]['name'] != 'background'
    return sorted(aids), positive


@pytest.mark.parametrize('edge', EDGES)
@pytest.mark.parametrize('overlap', [0.0, 0.3, (0.5, 0.0)], ids=['ov0', 'ov0.3', 'ov0.5x0'])
def test_grid_image_detection_covers_and_splits(grid_dset, edge, overlap):
    dims = (40, 32)
    grid = new_image_sample_grid(grid_dset, dims, window_overlap=overlap, edge=edge)
    targets = grid['targets']
    pos, neg = grid['positives_indexes'], grid['negatives_indexes']
    assert sorted(pos + neg) == list(range(len(targets)))
    assert not set(pos) & set(neg)
    assert [targets[i] for i in pos] == grid['positives']
    assert [targets[i] for i in neg] == grid['negatives']
    by_gid = {}
    for tr in targets:
        by_gid.setdefault(tr['gid'], []).append(tr)
    assert set(by_gid) == set(grid_dset.imgs)
    fy, fx = overlap if isinstance(overlap, tuple) else (overlap, overlap)
    for gid, trs in by_gid.items():
        img = grid_dset.imgs[gid]
        h, w = img['height'], img['width']
        mask = np.zeros((h, w), dtype=bool)
        for tr in trs:
            ys, xs = tr['slices']
            assert (ys.stop - ys.start, xs.stop - xs.start) == dims
            assert ys.start >= 0 and xs.start >= 0
            if edge == 'shift':
                assert ys.stop <= max(h, dims[0]) and xs.stop <= max(w, dims[1])
            mask[ys, xs] = True
            aids, positive = oracle_split(grid_dset, gid, (xs.start, ys.start, xs.stop, ys.stop))
            assert tr['aids'] == aids
            assert (targets.index(tr) in pos) == positive
        if edge != 'drop' or (h <= dims[0] and w <= dims[1]):
            assert mask.all()
        # the requested overlap between horizontal neighbours of the first row
        row = sorted({tr['slices'][1].start for tr in trs})
        stride = window_stride(dims[1], fx)
        if w > dims[1]:
            assert row[1] - row[0] == stride


def test_grid_small_image_gets_one_padded_window(grid_dset):
    for edge in EDGES:
        grid = new_image_sample_grid(grid_dset, (64, 64), edge=edge)
        small = [tr for tr in grid['targets'] if tr['gid'] == 3]  # 20 x 15 image
        assert [tr['slices'] for tr in small] == [(slice(0, 64), slice(0, 64))]


def test_grid_negative_classes_and_classes_of_interest(grid_dset):
    # only the background box (0, 0, 5, 5) is in this window of image 2
    grid = new_image_sample_grid(grid_dset, (64, 64))
    for tr, idx in zip(grid['targets'], range(len(grid['targets']))):
        aids, positive = oracle_split(grid_dset, tr['gid'], (
            tr['slices'][1].start, tr['slices'][0].start, tr['slices'][1].stop,
            tr['slices'][0].stop))
        assert (idx in grid['positives_indexes']) == positive
    everything = new_image_sample_grid(grid_dset, (64, 64), negative_classes=())
    assert len(everything['positives']) == sum(1 for tr in everything['targets'] if tr['aids'])
    nothing = new_image_sample_grid(grid_dset, (64, 64), classes_of_interest=['nope'])
    assert nothing['positives'] == []
    no_annots = new_image_sample_grid(grid_dset, (64, 64), use_annots=False)
    assert no_annots['positives'] == [] and all(tr['aids'] is None for tr in no_annots['targets'])


def test_grid_full_windows(grid_dset):
    grid = new_image_sample_grid(grid_dset, 'full')
    assert [tr['slices'] for tr in grid['targets']] == [
        (slice(0, img['height']), slice(0, img['width'])) for img in grid_dset.imgs.values()]


# --------------------------------------------------------------------------- video
@pytest.fixture(scope='module')
def vid_sampler():
    dset = kwcoco.CocoDataset.demo('vidshapes2', num_frames=5, image_size=(70, 90))
    return sampler_core.CocoSampler(dset, backend=None)


@pytest.mark.parametrize('edge', EDGES)
def test_grid_video_detection(vid_sampler, edge):
    dset = vid_sampler.dset
    dims = (3, 32, 40)
    grid = vid_sampler.new_sample_grid('video_detection', dims, window_overlap=0.25, edge=edge)
    targets = grid['targets']
    assert sorted(grid['positives_indexes'] + grid['negatives_indexes']) == \
        list(range(len(targets)))
    for vidid, video in dset.index.videos.items():
        vid_gids = list(dset.index.vidid_to_gids[vidid])
        mine = [tr for tr in targets if tr['vidid'] == vidid]
        t_starts = sorted({tr['time_slice'].start for tr in mine})
        assert t_starts == window_starts(len(vid_gids), 3, 0.25, edge).tolist()
        cover = np.zeros((len(vid_gids), video['height'], video['width']), dtype=bool)
        for tr in mine:
            ts, (ys, xs) = tr['time_slice'], tr['space_slice']
            assert tr['gids'] == vid_gids[ts.start:ts.stop]
            cover[ts, ys, xs] = True
            want_aids, want_pos = set(), False
            for gid in tr['gids']:
                a, p = oracle_split(dset, gid, (xs.start, ys.start, xs.stop, ys.stop))
                want_aids.update(a)
                want_pos |= p
            assert tr['aids'] == sorted(want_aids)
            assert (targets.index(tr) in grid['positives_indexes']) == want_pos
        if edge != 'drop':
            assert cover.all()
    assert grid['positives'] and grid['negatives']
    # every window loads at the window size, padded where it reaches past the video
    for tr in grid['positives'][:3] + grid['negatives'][-3:]:
        sample = vid_sampler.load_sample(dict(tr, channels='r|g|b'))
        assert sample['im'].shape == dims + (3,)


def test_grid_video_shorter_than_window_pads_in_time():
    dset = kwcoco.CocoDataset.demo('vidshapes1', num_frames=2, image_size=(32, 32))
    sampler = sampler_core.CocoSampler(dset, backend=None)
    grid = sampler.new_sample_grid('video_detection', (4, 32, 32))
    assert len(grid['targets']) == 1
    tr = grid['targets'][0]
    assert tr['time_slice'] == slice(0, 4) and tr['gids'] == [1, 2]
    sample = sampler.load_sample(dict(tr))
    assert sample['im'].shape == (4, 32, 32, 3)
    assert sample['params']['frame_gids'] == [1, 2, None, None]
    assert not sample['im'][2:].any()


def test_grid_regions_and_sampler_agree(vid_sampler):
    a = vid_sampler.new_sample_grid('image_detection', (32, 32))
    b = vid_sampler.regions.new_sample_grid('image_detection', (32, 32))
    c = new_sample_grid(vid_sampler.dset, 'image_detection', (32, 32))
    assert a == b == c


@pytest.mark.parametrize('kwargs, error', [
    ({'task': 'segmentation', 'window_dims': (8, 8)}, ValueError),
    ({'task': 'image_detection', 'window_dims': (8, 8, 8)}, ValueError),
    ({'task': 'video_detection', 'window_dims': (8, 8)}, ValueError),
    ({'task': 'image_detection', 'window_dims': (0, 8)}, ValueError),
    ({'task': 'image_detection', 'window_dims': 'half'}, ValueError),
    ({'task': 'image_detection', 'window_dims': (8, 8), 'window_overlap': 1.0}, ValueError),
    ({'task': 'image_detection', 'window_dims': (8, 8), 'window_overlap': (0.1,)}, ValueError),
    ({'task': 'image_detection', 'window_dims': (8, 8), 'edge': 'wrap'}, ValueError),
    ({'task': 'image_detection', 'window_dims': (2, 2), 'window_overlap': 0.9}, ValueError),
], ids=['task', 'image-3d', 'video-2d', 'zero', 'bad-str', 'overlap-1', 'overlap-len',
        'edge', 'stride-0'])
def test_grid_errors(grid_dset, kwargs, error):
    kwargs = dict(kwargs)
    task = kwargs.pop('task')
    with pytest.raises(error):
        new_sample_grid(grid_dset, task, **kwargs)


def test_grid_pairwise_visible_matches_index():
    from sampler_core.index import visible_fractions
    rng = np.random.RandomState(0)
    boxes = rng.randint(0, 50, size=(40, 4)).astype(float)
    boxes[:, 2:] = boxes[:, :2] + rng.randint(0, 10, size=(40, 2))
    windows = rng.randint(-5, 50, size=(15, 4)).astype(float)
    windows[:, 2:] = windows[:, :2] + rng.randint(1, 20, size=(15, 2))
    got = pairwise_visible(windows, boxes)
    for row, win in zip(got, windows):
        np.testing.assert_allclose(row, visible_fractions(boxes, win))
