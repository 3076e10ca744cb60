"""FrameIntersectionIndex: the rtree path (dense images) and the numpy path agree."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sampler_core.index as index_mod
from sampler_core.index import FrameIntersectionIndex, visible_fractions


def _random_index(seed, n_images=4, max_boxes=60, size=200):
    rng = np.random.RandomState(seed)
    aids, gids, boxes = [], [], []
    aid = 1
    for gid in range(1, n_images + 1):
        for _ in range(rng.randint(0, max_boxes)):
            x, y = rng.uniform(-20, size, 2)
            w, h = rng.choice([0, 1, 5, 30, 80]), rng.choice([0, 2, 7, 40])
            boxes.append([x, y, x + w, y + h])
            aids.append(aid)
            gids.append(gid)
            aid += 1
    dims = {g: (size, size) for g in range(1, n_images + 1)}
    return FrameIntersectionIndex.from_arrays(aids, gids, np.array(boxes).reshape(-1, 4), dims)


def _brute_visible(self, gid, window):
    rows = np.flatnonzero(self.gids == gid)
    frac = visible_fractions(self.ltrb[rows], np.asarray(window, dtype=float))
    keep = frac > 0
    return self.aids[rows[keep]].tolist(), frac[keep].tolist()


@pytest.fixture(params=['numpy', 'rtree'], ids=['numpy-path', 'rtree-path'])
def small_limit(request, monkeypatch):
    """Force every image onto one query path."""
    limit = 10 ** 9 if request.param == 'numpy' else 0
    monkeypatch.setattr(index_mod, 'SMALL_IMAGE_BOXES', limit)
    return request.param


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), x=st.integers(-50, 220), y=st.integers(-50, 220),
       w=st.integers(1, 150), h=st.integers(1, 150))
def test_index_visible_matches_brute_force_on_both_paths(seed, x, y, w, h):
    window = [x, y, x + w, y + h]
    results = {}
    for name, limit in [('numpy', 10 ** 9), ('rtree', 0)]:
        index_mod.SMALL_IMAGE_BOXES, saved = limit, index_mod.SMALL_IMAGE_BOXES
        try:
            self = _random_index(seed)
            for gid in self.image_dims:
                aids, frac = self.visible(gid, window)
                results[name, gid] = (aids.tolist(), frac.tolist())
                assert results[name, gid] == tuple(_brute_visible(self, gid, window))
        finally:
            index_mod.SMALL_IMAGE_BOXES = saved
    assert all(results['numpy', g] == results['rtree', g] for _, g in results)


def test_index_tree_only_holds_dense_images(monkeypatch):
    monkeypatch.setattr(index_mod, 'SMALL_IMAGE_BOXES', 20)
    self = FrameIntersectionIndex.from_arrays(
        list(range(1, 32)), [1] * 30 + [2], np.tile([0., 0, 5, 5], (31, 1)),
        {1: (10, 10), 2: (10, 10)})
    tree_ids = sorted(self._tree.intersection((-1e9, -1e9, -1e9, 1e9, 1e9, 1e9)))
    assert tree_ids == list(range(30))  # image 1's rows only
    assert self.overlapping_aids(2, [0, 0, 10, 10]) == [31]


@pytest.mark.parametrize('thresh', [0.0, 0.1, 0.5], ids=['t0', 't0.1', 't0.5'])
def test_index_random_negatives_respect_thresh(small_limit, thresh):
    self = _random_index(3, n_images=5, max_boxes=25)
    gids, boxes = self.random_negatives(40, window_size=(24, 16), thresh=thresh, rng=1,
                                        exact=False)
    assert len(gids) > 0
    ltrb = boxes.to_ltrb().data
    assert np.all(ltrb[:, 2] - ltrb[:, 0] == 24) and np.all(ltrb[:, 3] - ltrb[:, 1] == 16)
    for gid, win in zip(gids.tolist(), ltrb):
        rows = np.flatnonzero(self.gids == gid)
        b = self.ltrb[rows]
        iw = np.clip(np.minimum(b[:, 2], win[2]) - np.maximum(b[:, 0], win[0]), 0, None)
        ih = np.clip(np.minimum(b[:, 3], win[3]) - np.maximum(b[:, 1], win[1]), 0, None)
        assert np.all(iw * ih / (24 * 16) <= thresh + 1e-12)
        if thresh == 0:
            assert not np.any(visible_fractions(b, win) > 0)


def test_index_random_negatives_same_on_both_paths(monkeypatch):
    out = []
    for limit in (10 ** 9, 0):
        monkeypatch.setattr(index_mod, 'SMALL_IMAGE_BOXES', limit)
        self = _random_index(5, n_images=6, max_boxes=40)
        gids, boxes = self.random_negatives(30, window_size=(20, 20), rng=4, exact=False)
        out.append((gids.tolist(), boxes.data.tolist()))
    assert out[0] == out[1]


def test_index_pickles_and_rebuilds_tree(monkeypatch):
    import pickle
    monkeypatch.setattr(index_mod, 'SMALL_IMAGE_BOXES', 0)
    self = _random_index(9)
    clone = pickle.loads(pickle.dumps(self))
    for gid in self.image_dims:
        assert clone.overlapping_aids(gid, [0, 0, 100, 100]) == \
            self.overlapping_aids(gid, [0, 0, 100, 100])


@pytest.mark.parametrize('mode', ['all', 'subset', 'grid'], ids=['all-positives', 'subset', 'grid'])
def test_regions_pool_tables_equal_the_getters(mode):
    from sampler_core.regions import CocoRegions, TARGET_COLUMNS
    regions = CocoRegions.demo('shapes8')
    if mode == 'grid':
        regions.preselect_grid(window_dims=(128, 128), n_pos=7, n_neg=4, rng=2)
    else:
        regions.preselect(n_pos=None if mode == 'all' else 9, n_neg=6, window_dims=(48, 40), rng=1)
    pos, neg = regions.pool_tables()
    assert len(pos['gid']) == regions.n_positives and len(neg['gid']) == regions.n_negatives
    for table, getter, n in [(pos, regions.get_positive, regions.n_positives),
                             (neg, regions.get_negative, regions.n_negatives)]:
        for i in range(n):
            assert {k: table[k][i].item() for k in TARGET_COLUMNS} == getter(i)


def test_sampler_fork_has_its_own_pools_and_shares_the_tables():
    from sampler_core import CocoSampler
    base = CocoSampler.demo('shapes8', backend=None)
    base.regions.preselect(n_pos=6, n_neg=3, window_dims=(48, 48), rng=0)
    before = [base.load_item(i)['tr'] for i in range(9)]
    fork = base.fork()
    # nothing preselected yet: every target is a positive, no negatives (as a new sampler)
    assert fork.regions.n_positives == len(base.regions.targets) == 71
    assert fork.regions.n_negatives == 0
    assert fork.config is None and fork.subset is None
    fork.regions.preselect(n_pos=2, n_neg=5, window_dims=(32, 64), rng=7)
    assert (fork.regions.n_positives, fork.regions.n_negatives) == (2, 5)
    # the base pools are untouched: the same windows, item for item
    assert [base.load_item(i)['tr'] for i in range(9)] == before
    # shared read-only tables and caches, not copies
    assert fork.regions.targets is base.regions.targets
    assert fork.regions.isect_index is base.regions.isect_index
    assert fork.frames is base.frames and fork.dset is base.dset
    # the fork's windows are the ones its own pools hold
    pos, neg = fork.regions.pool_tables()
    for i in range(7):
        table, j = (pos, i) if i < 2 else (neg, i - 2)
        tr = fork.load_item(i)['tr']
        assert (tr['gid'], tr['aid']) == (int(table['gid'][j]), int(table['aid'][j]))
        if i >= 2:   # negatives have the preselected size
            assert tuple(tr['window_dims']) == (32, 64)
