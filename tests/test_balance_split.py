"""Class-balanced positive pools and leak-free train / val splits."""
import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampler_core import CocoSampler, SamplingConfig
from sampler_core.balance import (category_shares, expected_category_frequencies,
                                  pool_category_frequencies)
from sampler_core.regions import CocoRegions
from sampler_core.split import Split
from sampler_core.window import window_boxes

#: annotations per category of the imbalanced dataset: common ... very rare
COUNTS = {1: 1500, 2: 300, 3: 40, 4: 6}
NAMES = {1: 'common', 2: 'medium', 3: 'rare', 4: 'very_rare'}


def imbalanced_dict(n_images=24, width=800, height=600, seed=0, with_videos=False, scale=1.0):
    """A kwcoco dict (no pixel files needed for pools) with imbalanced categories.

    ``scale`` multiplies the number of annotations per category (at least 1 each).
    """
    rng = np.random.RandomState(seed)
    images = []
    for gid in range(1, n_images + 1):
        img = {'id': gid, 'file_name': f'img_{gid:03d}.png', 'width': width, 'height': height}
        if with_videos:
            img['video_id'] = 1 + (gid - 1) // 4
            img['frame_index'] = (gid - 1) % 4
        images.append(img)
    anns = []
    for cid, count in COUNTS.items():
        for _ in range(max(1, int(count * scale))):
            w, h = rng.uniform(4, 60, size=2)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            anns.append({'id': len(anns) + 1, 'image_id': int(rng.randint(1, n_images + 1)),
                         'category_id': cid, 'bbox': [x, y, w, h]})
    data = {'categories': [{'id': c, 'name': n} for c, n in NAMES.items()],
            'images': images, 'annotations': anns}
    if with_videos:
        data['videos'] = [{'id': v, 'name': f'video{v}'}
                          for v in sorted({img['video_id'] for img in images})]
    return data


@pytest.fixture(scope='module')
def imbalanced():
    import kwcoco
    return kwcoco.CocoDataset(imbalanced_dict())


@pytest.fixture(scope='module')
def pixel_dataset(tmp_path_factory):
    """Six small PNGs with many boxes, dumped to a .kwcoco.json (for load_item)."""
    import kwcoco
    import kwimage
    dpath = tmp_path_factory.mktemp('split_pixels')
    data = imbalanced_dict(n_images=6, width=640, height=480, seed=3, scale=0.06)
    rng = np.random.RandomState(0)
    for img in data['images']:
        kwimage.imwrite(str(dpath / img['file_name']),
                        rng.randint(0, 255, size=(480, 640, 3)).astype(np.uint8))
    path = dpath / 'data.kwcoco.json'
    path.write_text(json.dumps(data))
    return kwcoco.CocoDataset(str(path)).fpath


# --------------------------------------------------------------------------- balance
def _drawn_shares(regions):
    return pool_category_frequencies(regions)


@pytest.mark.parametrize('balance, target', [
    ('inverse', {1: 0.25, 2: 0.25, 3: 0.25, 4: 0.25}),
    ({1: 1, 2: 2, 3: 3, 4: 4}, {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}),
    ({4: 1.0, 3: 0.0}, {1: 1 / 3, 2: 1 / 3, 3: 0.0, 4: 1 / 3}),
], ids=['inverse', 'weights', 'unlisted-weight-1'])
def test_balance_10000_positives_follow_target_shares(imbalanced, balance, target):
    regions = CocoRegions(imbalanced)
    n_pos, _ = regions.preselect(n_pos=10000, n_neg=0, balance=balance, rng=0)
    assert n_pos == 10000
    drawn = _drawn_shares(regions)
    expected = expected_category_frequencies(regions, balance=balance)
    for cid, share in target.items():
        assert expected.get(cid, 0.0) == pytest.approx(share)
        # binomial sd at 10k draws is <= 0.005: 0.02 is four sd
        assert abs(drawn.get(cid, 0.0) - share) < 0.02, (cid, drawn, target)


def test_balance_none_is_the_previous_behaviour(imbalanced):
    a, b, c = CocoRegions(imbalanced), CocoRegions(imbalanced), CocoRegions(imbalanced)
    a.preselect(n_pos=500, n_neg=0, rng=3)
    b.preselect(n_pos=500, n_neg=0, rng=3, balance='none')
    c.preselect(n_pos=500, n_neg=0, rng=3, balance=None)
    assert np.array_equal(a._pos_select_idxs, b._pos_select_idxs)
    assert np.array_equal(a._pos_select_idxs, c._pos_select_idxs)
    total = sum(COUNTS.values())
    expected = expected_category_frequencies(a)
    assert expected == pytest.approx({c: n / total for c, n in COUNTS.items()})


def test_balance_default_pool_size_is_the_candidate_count(imbalanced):
    regions = CocoRegions(imbalanced)
    n_pos, _ = regions.preselect(n_neg=0, balance='inverse', rng=0)
    assert n_pos == sum(COUNTS.values())
    # rare annotations repeat; the very rare category makes up about a quarter
    assert pool_category_frequencies(regions)[4] == pytest.approx(0.25, abs=0.03)


def test_balance_is_deterministic_and_respects_category_filter(imbalanced):
    a, b = CocoRegions(imbalanced), CocoRegions(imbalanced)
    a.preselect(n_pos=300, n_neg=0, balance='inverse', category_ids=[3, 4], rng=5)
    b.preselect(n_pos=300, n_neg=0, balance='inverse', category_ids=[3, 4], rng=5)
    assert np.array_equal(a._pos_select_idxs, b._pos_select_idxs)
    assert set(pool_category_frequencies(a)) == {3, 4}
    assert expected_category_frequencies(a, 'inverse', category_ids=[3, 4]) == {3: 0.5, 4: 0.5}


def test_balance_errors(imbalanced):
    regions = CocoRegions(imbalanced)
    with pytest.raises(ValueError, match='one > 0'):
        regions.preselect(n_pos=10, n_neg=0, balance={1: 0, 2: 0, 3: 0, 4: 0}, rng=0)
    with pytest.raises(ValueError, match='weight 0'):  # only an absent category weighs
        regions.preselect(n_pos=10, n_neg=0, balance={1: 0, 2: 0, 3: 0, 4: 0, 99: 1}, rng=0)
    with pytest.raises(ValueError, match='balance'):
        regions.preselect(n_pos=10, n_neg=0, balance='sqrt', rng=0)
    with pytest.raises(TypeError, match='balance'):
        regions.preselect(n_pos=10, n_neg=0, balance=[1, 2], rng=0)
    with pytest.raises(ValueError, match='>= 0'):
        category_shares([1, 2], {1: -1.0})


def test_balance_from_config_by_category_name(pixel_dataset):
    cfg = SamplingConfig(dataset=pixel_dataset, backend=None, n_pos=10000, n_neg=0,
                         balance='weights', class_weights={'rare': 3.0, 'common': 0.0})
    sampler = CocoSampler.from_config(cfg)
    drawn = pool_category_frequencies(sampler)
    assert drawn.get(1, 0.0) == 0.0
    assert drawn[3] == pytest.approx(0.6, abs=0.02)
    assert drawn[2] == pytest.approx(0.2, abs=0.02)
    assert drawn[4] == pytest.approx(0.2, abs=0.02)
    bad = SamplingConfig(dataset=pixel_dataset, backend=None, balance='weights',
                         class_weights={'unicorn': 1.0})
    with pytest.raises(KeyError, match='class_weights'):
        CocoSampler.from_config(bad)


# --------------------------------------------------------------------------- split
def test_split_image_and_video_assign_whole_units():
    import kwcoco
    dset = kwcoco.CocoDataset(imbalanced_dict(with_videos=True))
    for by in ('image', 'video'):
        split = Split(by, val_fraction=0.25, seed=1)
        subsets = split.image_subsets(dset)
        n_units = len(dset.imgs) if by == 'image' else len(dset.videos())
        n_val_imgs = sum(subsets.values())
        if by == 'video':
            for vid in dset.videos():
                gids = dset.index.vidid_to_gids[vid]
                assert len({subsets[g] for g in gids}) == 1
            assert n_val_imgs == 4 * round(0.25 * n_units)
        else:
            assert n_val_imgs == round(0.25 * n_units)
        # independent of the pool seed and stable
        assert Split(by, 0.25, seed=1).image_subsets(dset) == subsets
        assert Split(by, 0.25, seed=2).image_subsets(dset) != subsets


def test_split_image_pools_are_disjoint(imbalanced):
    split = Split('image', val_fraction=0.3, seed=0)
    gids = {}
    n_pos = {}
    for subset in ('train', 'val'):
        regions = CocoRegions(imbalanced)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            n_pos[subset], _ = regions.preselect(window_dims=(64, 64), n_neg=50, rng=0,
                                                 split=split.select(imbalanced, subset))
        pos = {regions.get_positive(i)['gid'] for i in range(regions.n_positives)}
        neg = {regions.get_negative(i)['gid'] for i in range(regions.n_negatives)}
        gids[subset] = pos | neg
    assert gids['train'] and gids['val']
    assert not gids['train'] & gids['val']
    assert n_pos['train'] + n_pos['val'] == len(imbalanced.anns)


def _clipped_padded_windows(sampler):
    """(gid, ltrb) of every pool item's padded window clipped to its image."""
    out = []
    for i in range(sampler.n_samples):
        sample = sampler.load_item(i, with_annots=False)
        x0, y0, x1, y1 = sample['params']['sample_tlbr'].data.reshape(-1).tolist()
        h, w = sample['params']['data_dims']
        out.append((sample['target']['gid'], (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))))
    return out


def _overlapping_pairs(train, val):
    pairs = []
    for g, (a0, b0, a1, b1) in train:
        for g2, (c0, d0, c1, d1) in val:
            if g == g2 and min(a1, c1) > max(a0, c0) and min(b1, d1) > max(b0, d0):
                pairs.append(((g, (a0, b0, a1, b1)), (c0, d0, c1, d1)))
    return pairs


@pytest.mark.parametrize('window_dims, pad, block', [
    ((64, 64), (16, 16), (160, 160)),
    ((48, 80), (0, 24), (128, 256)),
    (None, (8, 8), (200, 150)),
], ids=['square-pad', 'wide-pad', 'box-sized'])
def test_split_block_no_train_window_overlaps_a_val_window(pixel_dataset, tmp_path, window_dims,
                                                           pad, block):
    """Every pool window (positives and negatives, with pad) as the sampler loads it."""
    windows = {}
    for subset in ('train', 'val'):
        cfg = SamplingConfig(dataset=pixel_dataset, backend='npy', workdir=str(tmp_path),
                             window_dims=window_dims, pad=pad, n_pos=None, n_neg=40, seed=4,
                             split_by='block', split_block=block, val_fraction=0.35,
                             split_seed=9)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            sampler = CocoSampler.from_config(cfg, subset=subset)
        assert sampler.regions.n_positives > 0 and sampler.regions.n_negatives > 0
        windows[subset] = _clipped_padded_windows(sampler)
    assert _overlapping_pairs(windows['train'], windows['val']) == []


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 1000), frac=st.floats(0.05, 0.95),
       bh=st.integers(16, 300), bw=st.integers(16, 300),
       ph=st.integers(0, 40), pw=st.integers(0, 40), data=st.data())
def test_split_block_property(seed, frac, bh, bw, ph, pw, data):
    """Random windows: kept train and kept val windows never share an image pixel;
    a window inside one block is always kept by exactly one subset."""
    import kwcoco
    dset = kwcoco.CocoDataset({'images': [{'id': 1, 'file_name': 'a.png', 'width': 500,
                                           'height': 400},
                                          {'id': 2, 'file_name': 'b.png', 'width': 123,
                                           'height': 321}]})
    split = Split('block', val_fraction=frac, seed=seed, block_dims=(bh, bw))
    train = split.select(dset, 'train', pad=(ph, pw))
    val = split.select(dset, 'val', pad=(ph, pw))
    n = 40
    rng = np.random.RandomState(data.draw(st.integers(0, 2 ** 31)))
    gids = rng.randint(1, 3, size=n)
    xy = rng.uniform(-60, 520, size=(n, 2))
    wh = rng.uniform(1, 200, size=(n, 2))
    ltrb = np.floor(np.hstack([xy, xy + wh]))
    kt, kv = train.keep(gids, ltrb), val.keep(gids, ltrb)
    assert not (kt & kv).any()
    dims = {1: (400, 500), 2: (321, 123)}
    padded = ltrb + np.array([-pw, -ph, pw, ph])
    for i in np.where(kt)[0]:
        for j in np.where(kv)[0]:
            if gids[i] != gids[j]:
                continue
            h, w = dims[gids[i]]
            a, b = np.clip(padded[i], 0, [w, h, w, h]), np.clip(padded[j], 0, [w, h, w, h])
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])
    # a padded window within one block (and the image) belongs to exactly one subset
    inside = ((padded[:, 0] >= 0) & (padded[:, 1] >= 0)
              & (np.floor(padded[:, 0] / bw) == np.floor((padded[:, 2] - 1) / bw))
              & (np.floor(padded[:, 1] / bh) == np.floor((padded[:, 3] - 1) / bh)))
    inside &= padded[:, 2] <= np.array([dims[g][1] for g in gids])
    inside &= padded[:, 3] <= np.array([dims[g][0] for g in gids])
    assert (kt | kv)[inside].all()


def test_split_block_fraction_and_stability(imbalanced):
    split = Split('block', val_fraction=0.25, seed=3, block_dims=(100, 100))
    grids = split.block_grids(imbalanced)
    flat = np.concatenate([g.ravel() for g in grids.values()])
    assert flat.sum() == round(0.25 * len(flat))
    again = Split('block', val_fraction=0.25, seed=3, block_dims=(100, 100)).block_grids(imbalanced)
    assert all(np.array_equal(grids[g], again[g]) for g in grids)


def test_split_target_windows_match_the_sampler(pixel_dataset):
    """The split computes the windows the sampler will read (incl. box-sized ones)."""
    sampler = CocoSampler(pixel_dataset, backend=None)
    t = sampler.regions.targets
    for window_dims in [(64, 64), (33, 47), None, 'square']:
        ltrb, _ = window_boxes(t['cx'][:50], t['cy'][:50], t['width'][:50], t['height'][:50],
                               window_dims)
        for i in range(50):
            tr = sampler.regions.get_positive(i)
            tr['window_dims'] = window_dims
            sl = sampler._infer_target_attributes(tr)['space_slice']
            assert ltrb[i].tolist() == [sl[1].start, sl[0].start, sl[1].stop, sl[0].stop]


def test_split_config_errors(pixel_dataset):
    cfg = SamplingConfig(dataset=pixel_dataset, backend=None, n_pos=4, n_neg=0)
    with pytest.raises(ValueError, match='split_by'):
        CocoSampler.from_config(cfg, subset='val')
    with pytest.raises(ValueError, match='subset'):
        CocoSampler.from_config(cfg, subset='test')
    both = SamplingConfig(dataset=pixel_dataset, backend=None, n_neg=0, split_by='image',
                          val_fraction=0.5)
    train = CocoSampler.from_config(both, subset='train')
    val = CocoSampler.from_config(both, subset='val')
    everything = CocoSampler.from_config(both, subset=None)
    assert train.n_positives + val.n_positives == everything.n_positives
    assert train.subset == 'train' and val.subset == 'val'


@pytest.mark.parametrize('edge', ['shift', 'pad', 'drop'])
def test_split_grid_mode(pixel_dataset, tmp_path, edge):
    """mode: grid pools: positives overlap an annotation, and with a block split
    no train window overlaps a val window."""
    cfg = dict(dataset=pixel_dataset, backend='npy', workdir=str(tmp_path), mode='grid',
               window_dims=(96, 128), pad=(8, 8), grid_overlap=0.3, grid_edge=edge, n_pos=None,
               split_by='block', split_block=(200, 200), val_fraction=0.4)
    windows = {}
    for subset in ('train', 'val'):
        sampler = CocoSampler.from_config(SamplingConfig(**cfg), subset=subset)
        assert sampler.regions.n_positives > 0
        for i in range(sampler.regions.n_positives):
            sample = sampler.load_item(i)
            assert sample['im'].shape[:2] == (96 + 16, 128 + 16)
            assert sample['target']['aid'] == -1
        windows[subset] = _clipped_padded_windows(sampler)
    assert _overlapping_pairs(windows['train'], windows['val']) == []
    # a balanced grid (config version 2) draws only windows of its side of the split
    balanced = CocoSampler.from_config(SamplingConfig(**{**cfg, 'balance': 'inverse'}),
                                       subset='train')
    assert set(_clipped_padded_windows(balanced)) <= set(windows['train'])


def test_balance_config_frequencies_match_the_drawn_pool(pixel_dataset):
    """What the explorer shows (expected shares of a config) is what 10,000 draws give,
    with a category filter, weights and a block split together."""
    from sampler_core.balance import config_category_frequencies
    cfg = SamplingConfig(dataset=pixel_dataset, backend=None, window_dims=(64, 64), pad=(8, 8),
                         n_pos=10000, n_neg=0, balance='weights',
                         class_weights={'medium': 2.0, 'common': 1.0},
                         categories=['medium', 'common'],
                         split_by='block', split_block=(160, 160), val_fraction=0.3)
    for subset in ('train', 'val'):
        sampler = CocoSampler.from_config(cfg, subset=subset)
        expected = config_category_frequencies(sampler, cfg, subset=subset)
        assert expected == pytest.approx({'medium': 2 / 3, 'common': 1 / 3})
        drawn = {sampler.dset.cats[c]['name']: v
                 for c, v in pool_category_frequencies(sampler).items()}
        for name, share in expected.items():
            assert abs(drawn[name] - share) < 0.02
