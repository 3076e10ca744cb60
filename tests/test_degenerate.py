"""Odd annotations never stop an epoch, and never enter a pool silently wrong.

A dataset full of degenerate annotations (zero width, zero height, points, boxes
partly and wholly off the image, sub-pixel boxes, unknown categories,
duplicated ids): every positive of every pool loads, for both backends and
every ``window_dims`` kind, with the window an independent oracle computes; the
annotations that cannot be positives are left out with one warning naming
them; repeated ids refuse the dataset.
"""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import synthetic

from sampler_core import CocoSampler, SamplingConfig

IMAGE_DIMS = ((120, 160), (90, 70))

#: (name, bbox as a function of the image's (H, W)); all category 1
KEPT = [
    ('normal', lambda H, W: [10, 12, 30, 20]),
    ('zero-width', lambda H, W: [40, 30, 0, 20]),
    ('zero-width-fractional', lambda H, W: [33.5, 10.25, 0, 7.25]),
    ('zero-height', lambda H, W: [20, 50, 25, 0]),
    ('point', lambda H, W: [60.75, 70.25, 0, 0]),
    ('point-integer', lambda H, W: [5, 6, 0, 0]),
    ('point-last-pixel', lambda H, W: [W - 1, H - 1, 0, 0]),
    ('partly-off-top-left', lambda H, W: [-10, -5, 30, 20]),
    ('partly-off-bottom-right', lambda H, W: [W - 5, H - 5, 30, 30]),
    ('zero-width-partly-off', lambda H, W: [3, -10, 0, 15]),
    ('sub-pixel', lambda H, W: [50.25, 40.5, 0.25, 0.25]),
    ('sub-pixel-on-edge', lambda H, W: [20, 20, 0.5, 0.5]),
]
OUTSIDE = [
    ('off-right', lambda H, W: [W + 10, 5, 20, 20]),
    ('off-top-left', lambda H, W: [-40, -40, 20, 20]),
    ('touching-right-edge', lambda H, W: [W, 10, 5, 5]),       # zero pixels inside
    ('point-on-right-edge', lambda H, W: [W, 10, 0, 0]),       # x == W is outside [0, W)
    ('zero-width-below', lambda H, W: [10, H + 1, 0, 5]),
]
UNKNOWN_CATEGORY = 99


@pytest.fixture(scope='module')
def degenerate(tmp_path_factory):
    """``(path, dset, names)``: the dataset written to a file; names -> aids per image."""
    dpath = tmp_path_factory.mktemp('degenerate')
    (dpath / 'images').mkdir()
    dataset = synthetic.new_dataset_dict()
    names = {}
    for gid, (H, W) in enumerate(IMAGE_DIMS, start=1):
        fname = f'images/img_{gid}.png'
        synthetic.write_image(dpath / fname, synthetic.coordinate_image(H, W, seed=gid))
        dataset['images'].append({'id': gid, 'file_name': fname, 'width': W, 'height': H})
        for name, box in KEPT + OUTSIDE:
            dataset['annotations'].append({'image_id': gid, 'category_id': 1, 'bbox': box(H, W)})
            names[(gid, name)] = len(dataset['annotations'])
        dataset['annotations'].append({'image_id': gid, 'category_id': UNKNOWN_CATEGORY,
                                       'bbox': [5, 5, 10, 10]})
        names[(gid, 'unknown-category')] = len(dataset['annotations'])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        dset = synthetic.build_coco(dataset, dpath)
    dset.dump(dset.fpath)
    return dset.fpath, dset, names


def _aids(names, kind):
    return sorted(a for (g, n), a in names.items() if n in {k for k, _ in kind})


def _own_window(bbox):
    """``(y0, y1, x0, x1)`` a positive loads without window_dims, by the documented rule:
    a side of length 0 at ``c`` is the 2 pixels ``[floor(c) - 1, floor(c) + 1)``, any other
    is ``ceil(d)`` pixels whose low edge is ``floor(c - ceil(d) / 2)``."""
    x, y, w, h = (float(v) for v in bbox)
    out = []
    for lo, d in ((y, h), (x, w)):
        if d == 0:
            out.extend([math.floor(lo) - 1, math.floor(lo) + 1])
        else:
            size = math.ceil(d)
            start = math.floor(lo + d / 2 - size / 2)
            out.extend([start, start + size])
    return tuple(out)


def test_degenerate_left_out_with_one_warning_naming_them(degenerate):
    path, dset, names = degenerate
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        sampler = CocoSampler(path)
        targets = sampler.regions.targets
    texts = [str(w.message) for w in record if 'not targets' in str(w.message)]
    outside = [t for t in texts if 'wholly outside their image' in t]
    unknown = [t for t in texts if 'not a category' in t]
    assert len(outside) == 1 and len(unknown) == 1, texts
    for aid in _aids(names, OUTSIDE):
        assert str(aid) in outside[0]
    for gid in (1, 2):
        assert str(names[(gid, 'unknown-category')]) in unknown[0]
    assert sorted(np.asarray(targets['aid']).tolist()) == _aids(names, KEPT)
    # the default pool, the sampler's classes: every label a sample can carry is known
    pos, _ = sampler.regions.pool_tables()
    assert set(pos['category_id'].tolist()) <= set(sampler.classes.id_to_idx)
    # they are still annotations: a window over them reports them, negatives avoid them
    aid = names[(1, 'unknown-category')]
    assert aid in sampler.load_sample({'gid': 1, 'slices': (slice(0, 20), slice(0, 20))})[
        'annots']['aids'].tolist()


@pytest.mark.parametrize('backend', [None, 'npy'], ids=['backend-none', 'backend-npy'])
@pytest.mark.parametrize('window_dims', [None, 'square', (24, 32)],
                         ids=['box-sized', 'square', 'fixed'])
def test_degenerate_every_positive_loads(degenerate, tmp_path, source_pixels, backend,
                                         window_dims):
    path, dset, names = degenerate
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sampler = CocoSampler(path, backend=backend, workdir=tmp_path)
        sampler.regions.preselect(window_dims=window_dims, n_neg=4, rng=0)
        from_cfg = CocoSampler.from_config(SamplingConfig(
            dataset=path, backend=backend, workdir=str(tmp_path), window_dims=window_dims,
            n_pos=None, n_neg=4, seed=0))
    kept = set(_aids(names, KEPT))
    flat = {a for a in kept if 0 in dset.anns[a]['bbox'][2:]}
    want = kept - flat if window_dims in (None, 'square') else kept
    pool = {sampler.regions.get_positive(i)['aid'] for i in range(sampler.n_positives)}
    assert pool == want
    for index in range(sampler.n_positives):
        # the pool's own window (no window_dims given): the oracle's window and pixels
        sample = sampler.load_positive(index)
        aid = sample['target']['aid']
        gid = dset.anns[aid]['image_id']
        window = _own_window(dset.anns[aid]['bbox'])
        assert sample['target']['space_slice'] == (slice(*window[:2]), slice(*window[2:]))
        image = source_pixels(dset, gid)
        np.testing.assert_array_equal(sample['im'], synthetic.expected_pixels(image, window))
        if aid in flat:  # the window holds its zero-size box
            assert aid in sample['annots']['aids'].tolist()
        if window_dims is not None:
            sample = sampler.load_positive(index, target={'window_dims': window_dims})
            assert sample['im'].shape[2] == 3
    for index in range(len(from_cfg)):   # windows as the config says
        sample = from_cfg.load_item(index)
        h, w = sample['target']['window_dims']
        assert sample['im'].shape == (h, w, 3) and h > 0 and w > 0
        if window_dims == 'square':
            assert h == w
        elif window_dims is not None:
            assert (h, w) == window_dims


def test_degenerate_default_pool_loads(degenerate):
    """No preselect: every target is a positive, zero-size ones too; each loads."""
    path, dset, names = degenerate
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sampler = CocoSampler(path)
    assert len(sampler) == len(_aids(names, KEPT))
    for index in range(len(sampler)):
        sample = sampler.load_item(index)
        aid = sample['target']['aid']
        assert aid in sample['annots']['aids'].tolist() or 0 not in dset.anns[aid]['bbox'][2:]


@pytest.mark.parametrize('section', ['annotations', 'images', 'categories'])
@pytest.mark.parametrize('given_as', ['path', 'dataset'])
def test_degenerate_repeated_ids_refuse_the_dataset(tmp_path, section, given_as):
    import kwcoco
    dpath = tmp_path / 'images'
    dpath.mkdir()
    dataset = synthetic.new_dataset_dict()
    for gid in (1, 2):
        synthetic.write_image(dpath / f'{gid}.png', synthetic.coordinate_image(40, 50, seed=gid))
        dataset['images'].append({'id': gid, 'file_name': f'images/{gid}.png', 'width': 50,
                                  'height': 40})
    dataset['annotations'] = [
        {'id': 7, 'image_id': 1, 'category_id': 1, 'bbox': [1, 1, 5, 5]},
        {'id': 8, 'image_id': 2, 'category_id': 2, 'bbox': [20, 20, 5, 5]},
    ]
    # the second item of the section takes the first one's id
    dataset[section][1]['id'] = dataset[section][0]['id']
    dup = dataset[section][0]['id']
    path = tmp_path / 'data.kwcoco.json'
    path.write_text(json.dumps(dataset))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # kwcoco warns, then keeps one of them
        data = str(path) if given_as == 'path' else kwcoco.CocoDataset(str(path))
        with pytest.raises(ValueError, match=section[:-1]) as info:
            CocoSampler(data)
    assert f'[{dup}]' in str(info.value)


def test_degenerate_unknown_category_makes_no_grid_window_positive():
    import kwcoco
    from sampler_core.grid import new_sample_grid
    dset = kwcoco.CocoDataset({
        'images': [{'id': 1, 'file_name': 'a.png', 'width': 40, 'height': 20}],
        'categories': [{'id': 1, 'name': 'a'}],
        'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [2, 2, 5, 5]},
                        {'id': 2, 'image_id': 1, 'category_id': 99, 'bbox': [22, 2, 5, 5]}]})
    grid = new_sample_grid(dset, 'image_detection', (20, 20))
    assert [tr['slices'][1].start for tr in grid['positives']] == [0]
    assert [(tr['slices'][1].start, tr['aids']) for tr in grid['negatives']] == [(20, [2])]
