"""``max_nodata_fraction``: pool windows with too much padding are moved, drawn again or dropped.

The dataset here has images whose pixels are never 0 and boxes placed at known
distances from the image border, so the padding of a sample is counted from
its pixels (``pad_value: 0``) and the windows that must be dropped follow from
the geometry by hand, not from the code under test.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampler_core import CocoSampler, SamplingConfig

IMG_H, IMG_W = 200, 160
WINDOW, PAD = 64, 8
#: (x, y, w, h) boxes of every image, whole pixels, and how each touches the border
BOXES = {
    'corner-tl': (0, 0, 20, 20),
    'corner-br': (140, 180, 20, 20),
    'edge-top': (70, 0, 16, 12),
    'edge-left': (0, 90, 12, 24),
    'inside': (70, 90, 20, 20),
    'near-edge': (20, 150, 16, 16),
}
N_IMAGES = 3
#: least padding a window (64 + 2 * 8 pad) holding the box can have, worked out by hand: a
#: box touching one image side keeps 8 px of pad outside on that axis (1 - 72 / 80), two
#: sides on both axes (1 - (72 / 80) ** 2); the others fit inside
LEAST_PADDING = {'corner-tl': 1 - (72 / 80) ** 2, 'corner-br': 1 - (72 / 80) ** 2,
                 'edge-top': 1 - 72 / 80, 'edge-left': 1 - 72 / 80,
                 'inside': 0.0, 'near-edge': 0.0}


@pytest.fixture(scope='module')
def border_dataset(tmp_path_factory):
    """Path of a dataset of 3 images (200 x 160) of pixels 1..255, boxes of :data:`BOXES`."""
    import kwcoco
    import kwimage
    root = tmp_path_factory.mktemp('nodata')
    dset = kwcoco.CocoDataset()
    cid = dset.add_category('thing')
    rng = np.random.RandomState(0)
    for i in range(N_IMAGES):
        name = f'img{i}.png'
        kwimage.imwrite(str(root / name), rng.randint(1, 256, size=(IMG_H, IMG_W, 3)).astype(np.uint8))
        gid = dset.add_image(file_name=name, width=IMG_W, height=IMG_H)
        for key, box in BOXES.items():
            dset.add_annotation(image_id=gid, category_id=cid, bbox=list(box), kind=key)
    path = root / 'data.kwcoco.json'
    dset.fpath = str(path)
    dset.dump(str(path))
    return str(path)


def _config(path, **kw) -> SamplingConfig:
    base = dict(dataset=path, backend=None, window_dims=(WINDOW, WINDOW), pad=(PAD, PAD),
                pad_mode='constant', pad_value=0, n_pos=None, n_neg=12, seed=3)
    base.update(kw)
    return SamplingConfig(**base)


def _build(cfg, **kw) -> tuple[CocoSampler, list]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        sampler = CocoSampler.from_config(cfg, **kw)
    return sampler, [str(w.message) for w in caught if 'max_nodata_fraction' in str(w.message)]


def _padding(im) -> float:
    """Fraction of a sample's pixels that are padding: the only pixels equal to 0."""
    im = np.asarray(im)
    return float((im == 0).all(axis=-1).sum() / (im.shape[0] * im.shape[1]))


def _window(sample) -> tuple:
    """The unpadded window of a sample, ltrb image pixels."""
    x0, y0, x1, y1 = np.asarray(sample['params']['sample_tlbr'].data).reshape(-1)[:4].tolist()
    return x0 + PAD, y0 + PAD, x1 - PAD, y1 - PAD


@pytest.mark.parametrize('thresh', [0.0, 0.1, 0.25])
def test_every_item_has_at_most_the_allowed_padding(border_dataset, thresh):
    plain, _ = _build(_config(border_dataset))
    before = [_padding(plain.load_item(i)['im']) for i in range(plain.n_samples)]
    assert max(before) > 0.25, 'the dataset must have windows above every threshold tested'
    sampler, _ = _build(_config(border_dataset, max_nodata_fraction=thresh))
    assert sampler.n_samples > 0
    for i in range(sampler.n_samples):
        assert _padding(sampler.load_item(i)['im']) <= thresh, i


@pytest.mark.parametrize('thresh', [0.0, 0.1, 0.25])
def test_positives_dropped_are_those_that_cannot_hold_their_box_with_less(border_dataset,
                                                                         thresh):
    sampler, messages = _build(_config(border_dataset, max_nodata_fraction=thresh))
    stats = sampler.regions.nodata_stats
    dropped = N_IMAGES * sum(v > thresh for v in LEAST_PADDING.values())
    assert stats['positives_dropped'] == dropped
    assert sampler.regions.n_positives == N_IMAGES * len(BOXES) - dropped
    assert stats['positives_redrawn'] > 0
    assert stats['max_nodata_fraction'] == thresh
    assert sampler.regions.n_negatives == 12 - stats['negatives_dropped']
    if dropped or stats['negatives_dropped']:
        assert len(messages) == 1
        assert f'dropped {dropped} positive and {stats["negatives_dropped"]} negative' \
            in messages[0]
    else:
        assert messages == []


@pytest.mark.parametrize('thresh', [0.0, 0.1, 0.25])
def test_moved_positives_still_hold_their_whole_annotation(border_dataset, thresh):
    sampler, _ = _build(_config(border_dataset, max_nodata_fraction=thresh))
    dset = sampler.dset
    kept = []
    for i in range(sampler.regions.n_positives):
        sample = sampler.load_item(i)
        aid = sample['target']['aid']
        x, y, w, h = dset.anns[aid]['bbox']
        x0, y0, x1, y1 = _window(sample)
        assert (x0 <= x and y0 <= y and x + w <= x1 and y + h <= y1), (aid, _window(sample))
        assert aid in sample['annots']['aids'].tolist()
        kept.append(dset.anns[aid]['kind'])
    assert sorted(set(kept)) == sorted(k for k, v in LEAST_PADDING.items() if v <= thresh)


def test_windows_larger_than_the_image_are_all_dropped(border_dataset):
    """A 256 x 256 window over a 200 x 160 image is at least 1 - 32000 / 65536 padding."""
    assert 1 - IMG_H * IMG_W / 256 ** 2 > 0.5
    cfg = _config(border_dataset, window_dims=(256, 256), pad=(0, 0), n_neg=3, neg_overlap=1.0,
                  max_nodata_fraction=0.5)
    sampler, messages = _build(cfg)
    assert sampler.regions.nodata_stats == {
        'max_nodata_fraction': 0.5, 'positives_redrawn': 0,
        'positives_dropped': N_IMAGES * len(BOXES), 'negatives_redrawn': 0,
        'negatives_dropped': 3}
    assert sampler.n_samples == 0
    assert len(messages) == 1 and 'dropped 18 positive and 3 negative' in messages[0]


def test_same_seed_same_pools_in_load_item_sample_dataset_and_export_chips(border_dataset,
                                                                          tmp_path):
    pytest.importorskip('torch')
    import kwcoco

    from sampler_core.prepare import export_chips
    from sampler_core.torch import SampleDataset
    cfg = _config(border_dataset, max_nodata_fraction=0.1)
    path = tmp_path / 'cfg.yaml'
    cfg.dump(path)
    a, _ = _build(cfg)
    b, _ = _build(SamplingConfig.load(path))
    ta, tb = a.regions.pool_tables(), b.regions.pool_tables()
    assert all(np.array_equal(ta[i][k], tb[i][k]) for i in (0, 1) for k in ta[i])
    assert a.regions.nodata_stats == b.regions.nodata_stats
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ds = SampleDataset(str(path), shuffle=False)
        out = export_chips(str(path), tmp_path / 'chips', verbose=0)
    tc = ds.sampler.regions.pool_tables()
    assert all(np.array_equal(ta[i][k], tc[i][k]) for i in (0, 1) for k in ta[i])
    assert len(ds) == a.n_samples
    chips = kwcoco.CocoDataset(out['train'])
    assert chips.n_images == a.n_samples
    for img in chips.imgs.values():
        index = img['source']['pool_index']
        sample = a.load_item(index)
        x0, y0, x1, y1 = np.asarray(sample['params']['sample_tlbr'].data).reshape(-1).tolist()
        assert img['source']['window'] == [x0, y0, x1, y1]
        import kwimage
        assert _padding(kwimage.imread(str(tmp_path / 'chips' / img['file_name']))) <= 0.1


def test_off_by_default_and_version1_files_keep_their_pools(border_dataset, tmp_path):
    text = (f'version: 1\ndataset: {border_dataset}\nbackend: null\nwindow_dims: [64, 64]\n'
            f'pad: [8, 8]\nn_pos: 10\nn_neg: 6\nseed: 4\n')
    path = tmp_path / 'v1.yaml'
    path.write_text(text)
    cfg = SamplingConfig.load(path)
    assert cfg.max_nodata_fraction is None and cfg.version == 2
    sampler, messages = _build(cfg)
    direct = CocoSampler(border_dataset, backend=None)
    direct.regions.preselect(n_pos=10, n_neg=6, window_dims=(64, 64), rng=4)  # no new argument
    ta, tb = sampler.regions.pool_tables(), direct.regions.pool_tables()
    assert all(np.array_equal(ta[i][k], tb[i][k]) for i in (0, 1) for k in ta[i])
    assert messages == []
    assert 'max_nodata_fraction: null' in cfg.dumps()


@pytest.mark.parametrize('bad, yaml, error', [
    (-0.1, '-0.1', ValueError), (1.5, '1.5', ValueError), (float('nan'), '.nan', ValueError),
    ('x', 'x', TypeError), (True, 'true', TypeError)], ids=str)
def test_bad_values_are_refused_naming_them(bad, yaml, error):
    """Out of range or NaN: ValueError; not a number: TypeError (the config's rule)."""
    with pytest.raises(error, match='max_nodata_fraction') as info:
        SamplingConfig(max_nodata_fraction=bad)
    assert repr(bad) in str(info.value)
    with pytest.raises(error, match='max_nodata_fraction') as info:
        SamplingConfig.loads(f'max_nodata_fraction: {yaml}\n')
    assert repr(bad) in str(info.value)


def test_yaml_round_trip_and_role():
    cfg = SamplingConfig(max_nodata_fraction=0.2)
    assert SamplingConfig.loads(cfg.dumps()).max_nodata_fraction == 0.2
    assert SamplingConfig.FIELD_ROLES['max_nodata_fraction'] == 'pools'
    assert SamplingConfig(max_nodata_fraction=1).max_nodata_fraction == 1.0


def test_to_config_keeps_the_threshold_and_its_pad(border_dataset):
    sampler = CocoSampler(border_dataset, backend=None)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sampler.regions.preselect(n_pos=8, n_neg=4, window_dims=(64, 64), rng=1,
                                  max_nodata_fraction=0.1, pad=(8, 4))
        cfg = sampler.to_config()
        assert (cfg.max_nodata_fraction, cfg.pad) == (0.1, (8, 4))
        again = CocoSampler.from_config(cfg)
    ta, tb = sampler.regions.pool_tables(), again.regions.pool_tables()
    assert all(np.array_equal(ta[i][k], tb[i][k]) for i in (0, 1) for k in ta[i])


def test_grid_windows_above_the_threshold_are_dropped(border_dataset):
    """Grid windows of 64 with edge 'pad' over 160 x 200: columns at 0, 64, 128 (the last
    half outside), rows at 0, 64, 128, 192 (the last 56 of its 64 rows outside)."""
    cfg = _config(border_dataset, mode='grid', grid_edge='pad', pad=(0, 0), n_pos=None,
                  n_neg=None, neg_to_pos_ratio=100.0, max_nodata_fraction=0.4)
    sampler, messages = _build(cfg)
    # by hand: padding 0 (3 rows x 2 columns), 0.5 (the last column, 3 rows), 56/64 (the
    # last row, 2 columns), 1 - 32 * 8 / 64**2 (the corner): 6 of an image's 12 are kept
    assert sampler.n_samples == N_IMAGES * 6
    stats = sampler.regions.nodata_stats
    assert stats['positives_dropped'] + stats['negatives_dropped'] == N_IMAGES * 6
    for i in range(sampler.n_samples):
        assert _padding(sampler.load_item(i)['im']) == 0.0
    assert len(messages) == 1


def _outside_fraction(ltrb, pad) -> float:
    """Fraction of the padded window ``ltrb`` + ``pad`` outside the 160 x 200 image, by area."""
    x0, y0, x1, y1 = ltrb[0] - pad, ltrb[1] - pad, ltrb[2] + pad, ltrb[3] + pad
    inside = max(0, min(x1, IMG_W) - max(x0, 0)) * max(0, min(y1, IMG_H) - max(y0, 0))
    return 1 - inside / ((x1 - x0) * (y1 - y0))


def test_dropped_positives_are_recorded_where_they_were(border_dataset):
    """At 0.0 the corner and edge boxes cannot be held without padding: their windows
    (64 px centred on the box, before any move) are the record, by hand."""
    sampler, _ = _build(_config(border_dataset, max_nodata_fraction=0.0))
    rec = sampler.regions.nodata_dropped
    want = set()
    for gid in sampler.dset.imgs:
        for key, (x, y, w, h) in BOXES.items():
            if LEAST_PADDING[key] > 0.0:
                cx, cy = x + w / 2, y + h / 2
                want.add((gid, cx - WINDOW / 2, cy - WINDOW / 2, cx + WINDOW / 2, cy + WINDOW / 2))
    pos = rec['kind'] == 'pos'
    got = {(g, *b) for g, b in zip(rec['gid'][pos].tolist(), rec['ltrb'][pos].tolist())}
    assert got == want
    n_neg = sampler.regions.nodata_stats['negatives_dropped']
    assert rec['total'] == len(rec['gid']) == len(want) + n_neg
    for b in rec['ltrb'][~pos].tolist():    # negatives dropped: above the limit too
        assert _outside_fraction(b, PAD) > 0.0


def test_dropped_grid_windows_are_recorded_and_the_record_is_capped(border_dataset,
                                                                   monkeypatch):
    cfg = _config(border_dataset, mode='grid', grid_edge='pad', pad=(0, 0), n_pos=None,
                  n_neg=None, neg_to_pos_ratio=100.0, max_nodata_fraction=0.4)
    sampler, _ = _build(cfg)
    rec = sampler.regions.nodata_dropped
    # by hand (see the test above): the last column (x 128) and the last row (y 192)
    want = {(g, x, y, x + 64, y + 64) for g in sampler.dset.imgs
            for x in (0, 64, 128) for y in (0, 64, 128, 192) if x == 128 or y == 192}
    got = {(g, *b) for g, b in zip(rec['gid'].tolist(), rec['ltrb'].tolist())}
    assert got == want and rec['total'] == len(want) == N_IMAGES * 6
    assert all(_outside_fraction(b, 0) > 0.4 for b in rec['ltrb'].tolist())
    from sampler_core import regions
    monkeypatch.setattr(regions, 'NODATA_RECORD_LIMIT', 4)
    sampler, _ = _build(cfg)
    rec = sampler.regions.nodata_dropped
    assert (len(rec['gid']), len(rec['kind']), rec['ltrb'].shape, rec['total']) == \
        (4, 4, (4, 4), N_IMAGES * 6)
    off, _ = _build(_config(border_dataset))
    assert off.regions.nodata_dropped['total'] == 0


def test_explorer_state_shows_the_counts(border_dataset, tmp_path):
    import os

    from app.state import ExplorerState
    state = ExplorerState(dataset=border_dataset, roots=[os.path.dirname(border_dataset)],
                          backend=None, window_dims=(64, 64), pad=(8, 8), n_pos=None, n_neg=6,
                          max_nodata_fraction=0.1)
    assert state.pools.nodata_stats['positives_dropped'] == N_IMAGES * 2
    state.max_nodata_fraction = None
    assert state.pools.nodata_stats['positives_dropped'] == 0
    assert state.pools.n_pos == N_IMAGES * len(BOXES)


# ------------------------------------------------------------ the shift, against brute force
@settings(max_examples=200, deadline=None)
@given(img=st.integers(20, 60), side=st.integers(4, 40), pad=st.integers(0, 6),
       box_lo=st.integers(-5, 60), box_len=st.integers(1, 30), half=st.booleans())
def test_inside_shift_leaves_the_least_padding_that_keeps_the_box(img, side, pad, box_lo,
                                                                  box_len, half):
    """One axis (the other has no padding): among all whole-pixel shifts of the window
    that do not shrink its overlap with the box, none leaves less padding than the one
    :func:`inside_shifts` chooses, and the chosen one does not shrink the overlap."""
    from hypothesis import assume

    from sampler_core.regions import inside_shifts
    lo = box_lo + (0.5 if half else 0.0)
    hi = lo + box_len
    assume(hi > 0 and lo < img)      # the box reaches into the image
    c = (lo + hi) / 2
    table = {'cx': np.array([c]), 'cy': np.array([500.0]), 'width': np.array([float(box_len)]),
             'height': np.array([10.0]), 'img_width': np.array([img]),
             'img_height': np.array([1000])}
    dx = int(inside_shifts(table, (10, side), ((0, 0), (pad, pad)))[0, 0])
    x0 = int(np.floor(c - side / 2))    # the window rule, written out

    def overlap(s):
        return max(0.0, min(x0 + s + side, hi) - max(x0 + s, lo))

    def outside(s):
        a, b = x0 + s - pad, x0 + s + side + pad
        return (b - a) - max(0, min(b, img) - max(a, 0))

    allowed = [s for s in range(-200, 201) if overlap(s) >= overlap(0)]
    assert overlap(dx) >= overlap(0)
    assert outside(dx) == min(outside(s) for s in allowed)
    # and it is the nearest such shift (unless no allowed shift reaches the image: then the
    # window is all padding, above any threshold but 1, which moves nothing, and dropped)
    if outside(dx) < side + 2 * pad:
        assert abs(dx) == min(abs(s) for s in allowed if outside(s) == outside(dx))
