"""Requests are bounded by what the dataset can give, with a clear error before any work.

* ``n_neg`` is at most the number of places a negative window can take
  (every whole-pixel position of every window size, in the images drawn from);
* ``n_pos`` / ``n_neg`` at most ``MAX_POOL_ITEMS``;
* a grid at most ``MAX_GRID_WINDOWS`` windows, counted arithmetically first;
* a block split whose blocks cannot hold one padded window is refused.

Each goes through ``regions.preselect``, ``sampler.preselect``,
``preselect_grid`` / ``new_sample_grid`` and config-driven sampling
(``from_config`` / ``apply_config``). "Before any work" is shown by making the
expensive step fail if it is reached.
"""
from __future__ import annotations

import warnings

import kwcoco
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampler_core import CocoSampler, SamplingConfig
from sampler_core import grid as grid_mod
from sampler_core import index as index_mod
from sampler_core.grid import window_count, window_starts
from sampler_core.index import FrameIntersectionIndex
from sampler_core.regions import MAX_POOL_ITEMS, CocoRegions
from sampler_core.split import Split


@pytest.fixture(scope='module')
def sampler(shapes_path):
    """shapes8 from this test's own file: 8 images of 600 x 600."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        out = CocoSampler(shapes_path)
        out.regions.targets, out.regions.isect_index
    return out


@pytest.fixture
def no_negative_draws(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('random_negatives was reached')
    monkeypatch.setattr(FrameIntersectionIndex, 'random_negatives', fail)


@pytest.fixture
def no_positive_draws(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('positive_candidates was reached')
    monkeypatch.setattr(CocoRegions, 'positive_candidates', fail)


@pytest.fixture
def no_grid_built(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('the grid was built')
    monkeypatch.setattr(grid_mod, '_ImageBoxes', fail)
    monkeypatch.setattr(grid_mod, '_grid_slices', fail)


# --------------------------------------------------------------------------- negatives
def _ways(shapes_path, **kw):
    """The same request through each public path."""
    cfg_kw = {k: v for k, v in kw.items() if k in SamplingConfig.FIELDS}
    return [
        ('regions.preselect', lambda s: s.fork().regions.preselect(rng=0, **kw)),
        ('sampler.preselect', lambda s: s.fork().preselect(rng=0, **kw)),
        ('apply_config', lambda s: s.fork().apply_config(
            SamplingConfig(dataset=shapes_path, backend=None, **cfg_kw))),
    ]


@pytest.mark.parametrize('way', range(3), ids=['regions', 'sampler', 'apply_config'])
def test_bounds_n_neg_above_places_refused_before_drawing(sampler, shapes_path,
                                                          no_negative_draws, way):
    # windows of 500 x 600 fit (600 - 500 + 1) * 1 ways in each of the 8 images
    name, run = _ways(shapes_path, n_pos=3, n_neg=8 * 101 + 1, window_dims=(500, 600))[way]
    with pytest.raises(ValueError, match='n_neg=809 is more than the 808 places'):
        run(sampler)


@pytest.mark.parametrize('way', range(3), ids=['regions', 'sampler', 'apply_config'])
def test_bounds_huge_requests_refused_before_work(sampler, shapes_path, no_negative_draws,
                                                  no_positive_draws, way):
    for kw, needle in [({'n_neg': 10 ** 8, 'n_pos': 3}, 'n_neg=100,000,000 is more than '
                                                          'MAX_POOL_ITEMS'),
                       ({'n_pos': MAX_POOL_ITEMS + 1, 'n_neg': 0}, 'n_pos=10,000,001'),
                       ({'n_pos': 3, 'n_neg': 2_000_000}, 'places')]:
        name, run = _ways(shapes_path, window_dims=(256, 256), **kw)[way]
        with pytest.raises(ValueError, match=needle):
            run(sampler)


def test_bounds_grid_counts_refused_before_work(sampler, shapes_path, no_grid_built):
    with pytest.raises(ValueError, match='n_pos=10,000,001'):
        sampler.fork().regions.preselect_grid((128, 128), n_pos=MAX_POOL_ITEMS + 1)
    # a 1 x 1 grid over 8 images of 600 x 600: 2,880,000 windows
    for run in [lambda: sampler.fork().regions.preselect_grid((1, 1)),
                lambda: sampler.new_sample_grid('image_detection', (1, 1)),
                lambda: sampler.fork().apply_config(SamplingConfig(
                    dataset=shapes_path, mode='grid', window_dims=(1, 1), backend=None))]:
        with pytest.raises(ValueError, match='2,880,000 windows, more than MAX_GRID_WINDOWS'):
            run()


def test_bounds_video_grid_counted_first(no_grid_built):
    dset = kwcoco.CocoDataset.demo('vidshapes1', num_frames=5, image_size=(600, 600))
    with pytest.raises(ValueError, match='1,800,000 windows'):
        grid_mod.new_sample_grid(dset, 'video_detection', (1, 1, 1))


def test_bounds_ratio_asks_more_than_places_draws_one_per_place():
    dset = kwcoco.CocoDataset({'images': [{'id': 1, 'file_name': 'a.png', 'width': 10,
                                           'height': 10},
                                          {'id': 2, 'file_name': 'b.png', 'width': 12,
                                           'height': 9}],
                               'categories': [{'id': 1, 'name': 'a'}],
                               'annotations': [{'id': i, 'image_id': 1, 'category_id': 1,
                                                'bbox': [i, i, 1, 1]} for i in range(1, 6)]})
    regions = CocoRegions(dset)
    places = (10 - 8 + 1) * (10 - 8 + 1) + (12 - 8 + 1) * (9 - 8 + 1)
    assert regions.negative_places((8, 8)) == places == 19
    with pytest.warns(UserWarning, match=f'only {places} places'):
        n_pos, n_neg = regions.preselect(neg_to_pos_ratio=10, window_dims=(8, 8), thresh=1.0,
                                         rng=0)
    assert (n_pos, n_neg) == (5, places)
    with pytest.raises(ValueError, match=f'n_neg=20 is more than the {places} places'):
        regions.preselect(n_neg=20, window_dims=(8, 8), thresh=1.0, rng=0)


def _enumerate_places(image_dims, sizes_of):
    """Every window random_negatives could draw, by a plain loop."""
    out = set()
    for gid, (h, w) in image_dims.items():
        for bw, bh in sizes_of(h, w):
            for y0 in range(max(h - bh + 1, 1)):
                for x0 in range(max(w - bw + 1, 1)):
                    out.add((gid, x0, y0, bw, bh))
    return out


@settings(max_examples=40, deadline=None)
@given(dims=st.lists(st.tuples(st.integers(1, 24), st.integers(1, 24)), min_size=1, max_size=3),
       fixed=st.one_of(st.none(), st.tuples(st.integers(1, 30), st.integers(1, 30))),
       anchors=st.lists(st.tuples(st.sampled_from([0.05, 0.1, 0.25, 0.5, 0.52, 1.0, 1.5]),
                                  st.sampled_from([0.1, 0.3, 0.5, 1.0])),
                        min_size=1, max_size=5),
       seed=st.integers(0, 1000))
def test_bounds_negative_places_count_every_drawable_window(dims, fixed, anchors, seed):
    image_dims = {g: d for g, d in enumerate(dims, start=1)}
    index = FrameIntersectionIndex.from_arrays([], [], np.empty((0, 4)), image_dims)
    if fixed is not None:
        kw = {'window_size': fixed}
        sizes_of = lambda h, w: {fixed}   # noqa: E731
    else:
        kw = {'anchors': np.array(anchors)}

        def sizes_of(h, w):
            z = min(h, w)
            return {(max(int(np.round(a * z)), 1), max(int(np.round(b * z)), 1))
                    for a, b in anchors}
    places = _enumerate_places(image_dims, sizes_of)
    assert index.negative_places(**kw) == len(places)
    gids, boxes = index.random_negatives(200, thresh=1.0, rng=seed, **kw)
    drawn = {(g, int(x0), int(y0), int(x1 - x0), int(y1 - y0))
             for g, (x0, y0, x1, y1) in zip(gids.tolist(), boxes.data.tolist())}
    assert drawn <= places


def test_bounds_negative_checks_in_chunks_give_the_same_pools(monkeypatch):
    index = FrameIntersectionIndex.demo('shapes8')
    want = index.random_negatives(300, window_size=(40, 40), rng=3)
    monkeypatch.setattr(index_mod, 'PAIR_BUDGET', 7)       # a few windows per chunk
    index._max_small_boxes = None
    got = index.random_negatives(300, window_size=(40, 40), rng=3)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1].data, want[1].data)


def test_bounds_negative_draws_in_pieces_still_avoid_annotations(monkeypatch):
    index = FrameIntersectionIndex.demo('shapes8')
    monkeypatch.setattr(index_mod, 'NEGATIVE_BATCH', 64)
    gids, boxes = index.random_negatives(500, window_size=(30, 30), rng=1)
    assert len(gids) == 500
    for g, box in zip(gids.tolist(), boxes.data.tolist()):
        assert index.overlapping_aids(g, box) == []


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 400), window=st.integers(1, 120),
       overlap=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9]),
       edge=st.sampled_from(['shift', 'pad', 'drop']))
def test_bounds_window_count_is_len_of_window_starts(length, window, overlap, edge):
    try:
        starts = window_starts(length, window, overlap, edge)
    except ValueError:
        with pytest.raises(ValueError):
            window_count(length, window, overlap, edge)
        return
    assert window_count(length, window, overlap, edge) == len(starts)


def test_bounds_grid_at_the_limit_is_built(monkeypatch):
    dset = kwcoco.CocoDataset({'images': [{'id': 1, 'file_name': 'a.png', 'width': 10,
                                           'height': 6}]})
    monkeypatch.setattr(grid_mod, 'MAX_GRID_WINDOWS', 60)
    assert len(grid_mod.new_sample_grid(dset, 'image_detection', (1, 1))['targets']) == 60
    monkeypatch.setattr(grid_mod, 'MAX_GRID_WINDOWS', 59)
    with pytest.raises(ValueError, match='60 windows'):
        grid_mod.new_sample_grid(dset, 'image_detection', (1, 1))


# --------------------------------------------------------------------------- split blocks
def test_bounds_split_block_smaller_than_the_window_is_refused(sampler, shapes_path,
                                                               no_negative_draws):
    needle = r'split_block \(1, 1\) is smaller than the padded window \(72, 80\)'
    sel = Split('block', block_dims=(1, 1)).select(sampler.dset, 'train', pad=(4, 8))
    with pytest.raises(ValueError, match=needle):
        sampler.fork().regions.preselect(n_pos=3, n_neg=3, window_dims=(64, 64), split=sel,
                                         rng=0)
    with pytest.raises(ValueError, match=needle):
        sampler.fork().regions.preselect_grid((64, 64), split=sel, rng=0)
    for mode in ('random', 'grid'):
        cfg = SamplingConfig(dataset=shapes_path, backend=None, window_dims=(64, 64),
                             pad=(4, 8), split_by='block', split_block=(1, 1), mode=mode)
        with pytest.raises(ValueError, match=needle):
            CocoSampler.from_config(cfg)
    # exactly as large as the padded window: accepted
    sel = Split('block', block_dims=(72, 80)).select(sampler.dset, 'train', pad=(4, 8))
    sampler.fork().regions.preselect(n_pos=3, n_neg=0, window_dims=(64, 64), split=sel, rng=0)


def test_bounds_split_keeping_no_box_sized_window_warns(sampler):
    sel = Split('block', block_dims=(1, 1)).select(sampler.dset, 'train', pad=(0, 0))
    with pytest.warns(UserWarning, match=r'keeps none of the \d+ positive windows'):
        n_pos, _ = sampler.fork().regions.preselect(n_neg=0, window_dims=None, split=sel, rng=0)
    assert n_pos == 0
