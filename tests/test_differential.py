"""Differential tests: ``sampler_core.CocoSampler`` against ``ndsampler.CocoSampler`` 0.8.1.

Both samplers are built on the *same* ``kwcoco.CocoDataset`` object (npy backend, separate
workdirs) and asked for the same targets; pixels, windows, transforms, annotation ids and
relative boxes must agree. Where we deliberately differ (``docs/design.md``, "Deliberate
differences") the test states the difference precisely instead of skipping the check:

* "Touching is not overlapping": ours == ndsampler's aids minus the boxes that only
  touch the window;
* "Windows wholly outside the image keep their place": ndsampler reports a moved window
  (``offset``, ``tf_rel_to_abs``, ``sample_tlbr``) when the padded window lies entirely
  outside the image along an axis;
* "``visible_thresh`` is inclusive and exact";
* "Non-constant pad modes work";
* "``load_sample(target, window_dims=...)``" honours the keyword;
* "The positive table is float64";
* "Grayscale" keeps a channel axis in ``load_image``.

Every window is also checked against an independent, brute-force computation (the
requested slice plus pad, and a numpy overlap test over all annotations of the image),
so agreement with ndsampler is never the only evidence.
"""
from __future__ import annotations

import copy
import math
import os
import warnings
from types import SimpleNamespace

import kwcoco
import kwimage
import numpy as np
import pytest

import ndsampler
import sampler_core

pytestmark = [
    pytest.mark.filterwarnings('ignore::FutureWarning'),
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),
]

DATASETS = ['shapes8', 'vidshapes8', 'synthetic']


# --------------------------------------------------------------------------- datasets
def make_synthetic_dataset(dpath, seed: int = 0, n_images: int = 10,
                           n_boxes: int = 30) -> kwcoco.CocoDataset:
    """Images of assorted sizes (one grayscale) with random boxes, many partly off-image.

    A third of the boxes have integer corners, so integer windows often end exactly on a
    box edge (the "touching" case). All boxes have positive width and height.
    """
    rng = np.random.RandomState(seed)
    dset = kwcoco.CocoDataset()
    dset.fpath = os.path.join(os.fspath(dpath), 'synthetic.kwcoco.json')
    for name in ['cat', 'dog', 'bird']:
        dset.add_category(name)
    sizes = [(120, 160), (200, 90), (64, 64), (150, 150), (97, 131)]
    for index in range(n_images):
        h, w = sizes[index % len(sizes)]
        if index == 3:
            pixels = rng.randint(0, 256, size=(h, w)).astype(np.uint8)  # grayscale
        else:
            pixels = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
        fpath = os.path.join(os.fspath(dpath), f'img_{index:02d}.png')
        kwimage.imwrite(fpath, pixels)
        gid = dset.add_image(file_name=fpath, width=w, height=h)
        for j in range(n_boxes):
            bw, bh = rng.uniform(2, 0.6 * w), rng.uniform(2, 0.6 * h)
            x, y = rng.uniform(-0.3 * w, w), rng.uniform(-0.3 * h, h)
            if j % 3 == 0:
                x, y = int(round(x)), int(round(y))
                bw, bh = max(1, int(round(bw))), max(1, int(round(bh)))
            dset.add_annotation(image_id=gid, category_id=int(rng.randint(1, 4)),
                                bbox=[x, y, bw, bh])
    return dset


def _build_pair(dset, tmp_path_factory, name):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        nd = ndsampler.CocoSampler(dset, backend='npy',
                                   workdir=tmp_path_factory.mktemp(f'nd_{name}'))
    ours = sampler_core.CocoSampler(dset, backend='npy',
                                    workdir=tmp_path_factory.mktemp(f'ours_{name}'))
    return SimpleNamespace(name=name, dset=dset, nd=nd, ours=ours)


@pytest.fixture(scope='module', params=DATASETS, ids=DATASETS)
def pair(request, tmp_path_factory):
    """(ndsampler, sampler_core) samplers on one shared dataset object."""
    name = request.param
    if name == 'synthetic':
        dset = make_synthetic_dataset(tmp_path_factory.mktemp('synthetic'))
    else:
        dset = kwcoco.CocoDataset.demo(name)
    return _build_pair(dset, tmp_path_factory, name)


@pytest.fixture(scope='module')
def synthetic_pair(tmp_path_factory):
    dset = make_synthetic_dataset(tmp_path_factory.mktemp('synthetic2'), seed=1, n_images=5)
    return _build_pair(dset, tmp_path_factory, 'synthetic2')


@pytest.fixture(scope='module')
def edge_pair(tmp_path_factory):
    """One 40x50 image with hand-placed integer boxes around the window x 10:30, y 10:30."""
    dpath = tmp_path_factory.mktemp('edges')
    dset = kwcoco.CocoDataset()
    dset.fpath = os.fspath(dpath / 'edges.kwcoco.json')
    pixels = (np.arange(40 * 50 * 3) % 251).astype(np.uint8).reshape(40, 50, 3)
    kwimage.imwrite(os.fspath(dpath / 'edges.png'), pixels)
    gid = dset.add_image(file_name=os.fspath(dpath / 'edges.png'), width=50, height=40)
    dset.add_category('thing')
    boxes = {
        'inside': [12, 12, 5, 5],
        'touch_left': [0, 12, 10, 5],       # right edge x=10 == window left
        'touch_right': [30, 12, 8, 5],      # left edge x=30 == window right
        'touch_top': [12, 2, 5, 8],         # bottom edge y=10 == window top
        'touch_corner': [30, 30, 4, 4],     # only the corner point (30, 30)
        'half_visible': [5, 15, 10, 4],     # x 5:15, half inside
        'quarter_visible': [25, 15, 20, 4],  # x 25:45, a quarter inside
    }
    aid_of = {name: dset.add_annotation(image_id=gid, category_id=1, bbox=bbox)
              for name, bbox in boxes.items()}
    out = _build_pair(dset, tmp_path_factory, 'edges')
    out.gid, out.aid_of, out.pixels = gid, aid_of, pixels
    return out


# --------------------------------------------------------------------------- oracles
def padded_window(space_slice, pad) -> np.ndarray:
    """The padded window ``[x0, y0, x1, y1]`` a target asks for (the truth)."""
    if isinstance(pad[0], (int, np.integer)):
        pad = ((pad[0], pad[0]), (pad[1], pad[1]))
    (top, bottom), (left, right) = pad
    sl_y, sl_x = space_slice
    return np.array([sl_x.start - left, sl_y.start - top, sl_x.stop + right, sl_y.stop + bottom])


def ndsampler_clamped_window(window, data_dims) -> np.ndarray:
    """Where ndsampler 0.8.1 *reports* a window ("Windows wholly outside ...").

    Along an axis where the padded window lies entirely before the image (stop < 0) or
    after it (start > size), ndsampler keeps the window's size but moves it to touch the
    image border, because it derives the window from the clipped data slice.
    """
    out = np.array(window)
    for lo_i, hi_i, dim in ((0, 2, data_dims[1]), (1, 3, data_dims[0])):
        size = out[hi_i] - out[lo_i]
        if out[hi_i] < 0:
            out[lo_i], out[hi_i] = -size, 0
        elif out[lo_i] > dim:
            out[lo_i], out[hi_i] = dim, dim + size
    return out


def ann_ltrb(dset, aids) -> np.ndarray:
    xywh = np.array([dset.anns[a]['bbox'] for a in aids], dtype=np.float64).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def visible_fraction(dset, aids, window) -> np.ndarray:
    """Fraction of each box inside the window (zero-area boxes: 1 if inside, half-open)."""
    ltrb = ann_ltrb(dset, aids)
    iw = np.clip(np.minimum(ltrb[:, 2], window[2]) - np.maximum(ltrb[:, 0], window[0]), 0, None)
    ih = np.clip(np.minimum(ltrb[:, 3], window[3]) - np.maximum(ltrb[:, 1], window[1]), 0, None)
    area = (ltrb[:, 2] - ltrb[:, 0]) * (ltrb[:, 3] - ltrb[:, 1])
    inside = ((ltrb[:, 0] >= window[0]) & (ltrb[:, 0] < window[2]) &
              (ltrb[:, 1] >= window[1]) & (ltrb[:, 1] < window[3]))
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(area > 0, iw * ih / area, inside.astype(float))


def our_rule(dset, aids, window, visible_thresh=0.0) -> list:
    """docs/design.md "Touching is not overlapping": fraction > 0 and >= visible_thresh."""
    aids = list(aids)
    frac = visible_fraction(dset, aids, window)
    return [a for a, f in zip(aids, frac) if f > 0 and f >= visible_thresh]


def brute_force_aids(dset, gid, window, visible_thresh=0.0) -> list:
    return our_rule(dset, sorted(dset.index.gid_to_aids[gid]), window, visible_thresh)


def _plain(target: dict) -> dict:
    """A deep copy with numpy scalars turned into Python numbers."""
    return {k: (v.item() if isinstance(v, np.generic) else copy.deepcopy(v))
            for k, v in target.items()}


# --------------------------------------------------------------------------- comparison
def compare(pair, target: dict, visible_thresh: float = 0.0) -> dict:
    """Load ``target`` with both samplers and check every agreement we promise.

    Returns:
        dict with ``touching`` (aids ndsampler adds because they only touch the window)
        and ``nd_window_wrong`` (ndsampler reported a moved window).
    """
    nd_sample = pair.nd.load_sample(_plain(target), visible_thresh=visible_thresh)
    our_sample = pair.ours.load_sample(_plain(target), visible_thresh=visible_thresh)
    nd_t, our_t = nd_sample['target'], our_sample['target']
    ctx = f'{pair.name}: target={target!r}'

    # the window
    assert our_t['space_slice'] == nd_t['space_slice'], ctx
    assert our_t['gid'] == nd_t['gid'], ctx
    assert tuple(our_sample['params']['pad']) == tuple(nd_sample['params']['pad']), ctx
    window = padded_window(our_t['space_slice'], our_sample['params']['pad'])
    assert np.array_equal(our_sample['params']['offset'], -window[:2]), ctx
    expect_tf = np.array([[1, 0, window[0]], [0, 1, window[1]], [0, 0, 1]], dtype=float)
    assert np.array_equal(our_sample['params']['tf_rel_to_abs'], expect_tf), ctx
    assert np.array_equal(our_sample['params']['sample_tlbr'].to_ltrb().data, window), ctx

    # the pixels
    nd_im, our_im = nd_sample['im'], our_sample['im']
    assert our_im.dtype == nd_im.dtype, ctx
    assert our_im.shape == nd_im.shape, ctx
    assert our_im.shape[:2] == (window[3] - window[1], window[2] - window[0]), ctx
    assert np.array_equal(our_im, nd_im), ctx

    # ndsampler's reported window: right unless it lies entirely outside the image
    data_dims = our_t['data_dims']
    nd_window = ndsampler_clamped_window(window, data_dims)
    nd_window_wrong = not np.array_equal(nd_window, window)
    assert np.array_equal(nd_sample['params']['offset'], -nd_window[:2]), ctx
    assert np.array_equal(nd_sample['params']['tf_rel_to_abs'], np.array(
        [[1, 0, nd_window[0]], [0, 1, nd_window[1]], [0, 0, 1]], dtype=float)), ctx
    if not nd_window_wrong:
        assert np.array_equal(nd_sample['params']['offset'], our_sample['params']['offset'])
        assert np.array_equal(nd_sample['params']['tf_rel_to_abs'],
                              our_sample['params']['tf_rel_to_abs'])

    # the annotations: ndsampler's index query on the true window, filtered by our rule
    gid = our_t['gid']
    nd_all = list(pair.nd.regions.overlapping_aids(gid, kwimage.Boxes(window, 'ltrb')))
    expected = our_rule(pair.dset, nd_all, window, visible_thresh)
    touching = [a for a in nd_all if a not in our_rule(pair.dset, [a], window)]
    frac = visible_fraction(pair.dset, touching, window)
    assert (frac == 0).all(), ctx  # what ndsampler adds only touches the window
    our_aids = our_sample['annots']['aids'].tolist()
    assert our_aids == expected, ctx
    assert our_aids == brute_force_aids(pair.dset, gid, window, visible_thresh), ctx
    if not nd_window_wrong and visible_thresh == 0:
        nd_aids = nd_sample['annots']['aids'].tolist()
        assert nd_aids == nd_all, ctx
        assert sorted(set(nd_aids) - set(our_aids)) == sorted(touching), ctx
        assert set(our_aids) <= set(nd_aids), ctx

    # relative boxes: abs box minus the window corner, and equal to ndsampler's
    rel = our_sample['annots']['rel_boxes'].to_ltrb().data
    abs_ltrb = ann_ltrb(pair.dset, our_aids)
    assert np.allclose(rel, abs_ltrb - np.tile(window[:2], 2)), ctx
    assert our_sample['annots']['cids'].tolist() == [
        pair.dset.anns[a]['category_id'] for a in our_aids], ctx
    if not nd_window_wrong:
        nd_rel = dict(zip(nd_sample['annots']['aids'].tolist(),
                          nd_sample['annots']['rel_boxes'].to_ltrb().data))
        for aid, box in zip(our_aids, rel):
            if aid in nd_rel:  # with visible_thresh > 0 ndsampler may drop ties
                assert np.allclose(nd_rel[aid], box), ctx
    return {'touching': len(touching) if visible_thresh == 0 else 0,
            'nd_window_wrong': int(nd_window_wrong)}


def random_targets(dset, num: int, seed: int) -> list[dict]:
    """cx/cy/width/height targets, many off the image, with assorted window_dims and pads."""
    rng = np.random.RandomState(seed)
    gids = sorted(dset.imgs)
    targets = []
    for i in range(num):
        img = dset.imgs[gids[rng.randint(len(gids))]]
        w, h = img['width'], img['height']
        tr = {'gid': img['id'],
              'cx': float(rng.uniform(-0.3 * w, 1.3 * w)),
              'cy': float(rng.uniform(-0.3 * h, 1.3 * h)),
              'width': float(rng.uniform(1, 0.8 * w)),
              'height': float(rng.uniform(1, 0.8 * h))}
        kind = i % 4
        if kind == 1:
            tr['window_dims'] = 'square'
        elif kind == 2:
            tr['window_dims'] = (int(rng.randint(1, h)), int(rng.randint(1, w)))
        elif kind == 3:
            tr['window_dims'] = 'extent'
        if i % 3:
            tr['pad'] = (int(rng.randint(0, 25)), int(rng.randint(0, 25)))
        targets.append(tr)
    return targets


def _total(results, key):
    return sum(r[key] for r in results)


# --------------------------------------------------------------------------- tests
def _nd_positive_indexes(pair):
    """ndsampler's positive indexes that are ours too, in order: we leave boxes wholly
    outside their image out (docs/design.md rule 2; all boxes here have positive size)."""
    def outside(ann):
        x, y, w, h = ann['bbox']
        img = pair.dset.imgs[ann['image_id']]
        return x + w <= 0 or y + h <= 0 or x >= img['width'] or y >= img['height']
    gone = {aid for aid, ann in pair.dset.anns.items() if outside(ann)}
    keep = [i for i in range(pair.nd.n_positives)
            if pair.nd.regions.get_positive(i)['aid'] not in gone]
    assert pair.nd.n_positives == len(pair.dset.anns)
    assert pair.ours.n_positives == len(keep) == len(pair.dset.anns) - len(gone)
    return keep


def test_sampler_positive_tables_agree(pair):
    """Same positives, same order; cx/cy/width/height equal to float32 precision."""
    for index, nd_index in enumerate(_nd_positive_indexes(pair)):
        nd_tr = pair.nd.regions.get_positive(nd_index)
        our_tr = pair.ours.regions.get_positive(index)
        assert set(our_tr) == set(nd_tr)
        for key in ('aid', 'gid', 'category_id', 'img_width', 'img_height'):
            assert our_tr[key] == nd_tr[key], (index, key)
        for key in ('cx', 'cy', 'width', 'height'):
            assert our_tr[key] == pytest.approx(float(nd_tr[key]), rel=1e-6, abs=1e-4)
            assert type(our_tr[key]) is float  # float64, not float32


@pytest.mark.parametrize('extra', [
    {},
    {'window_dims': 'square'},
    {'window_dims': 'square', 'pad': (25, 25)},
    {'window_dims': (64, 48), 'pad': (5, 3)},
    {'window_dims': (7, 300)},
], ids=['extent', 'square', 'square-pad25', 'dims64x48-pad5x3', 'dims7x300'])
def test_sampler_every_positive_matches_ndsampler(pair, extra):
    """Every positive (ndsampler's target dict), several window sizes and pads."""
    results = []
    for index in range(pair.nd.n_positives):
        target = {**pair.nd.regions.get_positive(index), **extra}
        results.append(compare(pair, target))
    assert len(results) == pair.nd.n_positives


def test_sampler_random_windows_match_ndsampler(pair):
    """Random cx/cy targets, windows partly and wholly off the image, assorted pads."""
    results = [compare(pair, tr) for tr in random_targets(pair.dset, 120, seed=7)]
    if pair.name == 'synthetic':
        # both deliberate differences are exercised, not vacuous
        assert _total(results, 'touching') > 0
        assert _total(results, 'nd_window_wrong') > 0


def test_sampler_slice_whole_image_and_aid_targets_match(pair):
    """``slices`` / ``space_slice``, whole-image and ``aid`` targets."""
    for gid in sorted(pair.dset.imgs)[:4]:
        h, w = pair.dset.imgs[gid]['height'], pair.dset.imgs[gid]['width']
        compare(pair, {'gid': gid})
        compare(pair, {'gid': gid, 'pad': (3, 4)})
        compare(pair, {'gid': gid, 'slices': (slice(5, 40), slice(-10, 30))})
        compare(pair, {'gid': gid, 'space_slice': (slice(h - 10, h + 20), slice(3, 4))})
        compare(pair, {'gid': gid, 'slices': (slice(-20, 0), slice(w - 1, w + 9)), 'pad': (2, 2)})
    for aid in sorted(pair.dset.anns)[:12]:
        compare(pair, {'aid': aid})
        compare(pair, {'aid': aid, 'window_dims': (33, 21), 'pad': (1, 2)})


def test_sampler_touching_boxes_are_the_only_aid_difference(edge_pair):
    """Touching is not overlapping: ndsampler adds exactly the touching hand-placed boxes."""
    target = {'gid': edge_pair.gid, 'slices': (slice(10, 30), slice(10, 30))}
    result = compare(edge_pair, target)
    aid_of = edge_pair.aid_of
    nd_aids = edge_pair.nd.load_sample(dict(target))['annots']['aids'].tolist()
    our_aids = edge_pair.ours.load_sample(dict(target))['annots']['aids'].tolist()
    assert our_aids == [aid_of[k] for k in ('inside', 'half_visible', 'quarter_visible')]
    touching = {aid_of[k] for k in ('touch_left', 'touch_right', 'touch_top', 'touch_corner')}
    assert set(nd_aids) - set(our_aids) == touching
    assert result['touching'] == 4


@pytest.mark.parametrize('visible_thresh', [0.25, 0.5, 0.75], ids=['vt0.25', 'vt0.5', 'vt0.75'])
def test_sampler_visible_thresh_is_inclusive(edge_pair, synthetic_pair, visible_thresh):
    """Keep fraction >= thresh; ndsampler drops boxes exactly at the threshold."""
    target = {'gid': edge_pair.gid, 'slices': (slice(10, 30), slice(10, 30))}
    compare(edge_pair, target, visible_thresh=visible_thresh)
    nd_aids = edge_pair.nd.load_sample(dict(target), visible_thresh=visible_thresh)[
        'annots']['aids'].tolist()
    our_aids = edge_pair.ours.load_sample(dict(target), visible_thresh=visible_thresh)[
        'annots']['aids'].tolist()
    half, quarter = edge_pair.aid_of['half_visible'], edge_pair.aid_of['quarter_visible']
    assert half in our_aids if visible_thresh <= 0.5 else half not in our_aids
    assert quarter in our_aids if visible_thresh <= 0.25 else quarter not in our_aids
    # ndsampler uses visibility = inter / (area + 1e-6) > thresh: the exact ties are lost
    assert half not in nd_aids or visible_thresh < 0.5
    assert quarter not in nd_aids
    # on random data: ndsampler's answer is a subset, the rest are (near-)exact ties
    for tr in random_targets(synthetic_pair.dset, 40, seed=11):
        compare(synthetic_pair, tr, visible_thresh=visible_thresh)
        nd = synthetic_pair.nd.load_sample(_plain(tr), visible_thresh=visible_thresh)
        ours = synthetic_pair.ours.load_sample(_plain(tr), visible_thresh=visible_thresh)
        window = padded_window(ours['target']['space_slice'], ours['params']['pad'])
        if not np.array_equal(ndsampler_clamped_window(window, ours['target']['data_dims']),
                              window):
            continue  # ndsampler looked at a moved window
        nd_aids, our_aids = nd['annots']['aids'].tolist(), ours['annots']['aids'].tolist()
        assert set(nd_aids) <= set(our_aids)
        extra = [a for a in our_aids if a not in nd_aids]
        frac = visible_fraction(synthetic_pair.dset, extra, window)
        assert np.all(np.abs(frac - visible_thresh) < 1e-6), (tr, extra, frac)


def test_sampler_window_outside_image_reports_true_offset(edge_pair):
    """A window wholly off the image keeps its own position in our params."""
    gid = edge_pair.gid
    cases = [
        ({'gid': gid, 'slices': (slice(-16, -8), slice(10, 20))}, [10, -8, 20, 0]),
        ({'gid': gid, 'slices': (slice(5, 15), slice(60, 70)), 'pad': (0, 2)}, [50, 5, 64, 15]),
        ({'gid': gid, 'slices': (slice(-30, -20), slice(-30, -10))}, [-20, -10, 0, 0]),
    ]
    for target, nd_ltrb in cases:
        result = compare(edge_pair, target)
        assert result['nd_window_wrong'] == 1
        nd_sample = edge_pair.nd.load_sample(dict(target))
        ours = edge_pair.ours.load_sample(dict(target))
        assert nd_sample['params']['sample_tlbr'].to_ltrb().data.tolist() == nd_ltrb
        window = padded_window(ours['target']['space_slice'], ours['params']['pad'])
        assert ours['params']['sample_tlbr'].to_ltrb().data.tolist() == window.tolist()
        assert not ours['im'].any()  # all padding


@pytest.mark.parametrize('mode', ['edge', 'reflect', 'symmetric', 'wrap'])
def test_sampler_nonconstant_pad_modes_work(edge_pair, mode):
    """ndsampler passes constant_values to every np.pad mode and fails; ours pads."""
    target = {'gid': edge_pair.gid, 'slices': (slice(-5, 20), slice(40, 58)), 'pad': (2, 3),
              'padkw': {'mode': mode}}
    with pytest.raises(ValueError, match='constant_values'):
        edge_pair.nd.load_sample(copy.deepcopy(target))
    ours = edge_pair.ours.load_sample(copy.deepcopy(target))
    # rows -7:22, cols 37:61 of a 40x50 image: 7 rows above, 11 columns right are padding
    expected = np.pad(edge_pair.pixels[0:22, 37:50], [(7, 0), (0, 11), (0, 0)], mode=mode)
    assert np.array_equal(ours['im'], expected)
    # without padding both agree, whatever the mode
    inside = {'gid': edge_pair.gid, 'slices': (slice(5, 20), slice(3, 30)),
              'padkw': {'mode': mode}}
    compare(edge_pair, inside)


def test_sampler_window_dims_keyword_is_honoured(pair):
    """load_sample(target, window_dims=...) is honoured; ndsampler ignores the keyword."""
    target = _plain(pair.nd.regions.get_positive(0))
    nd_sample = pair.nd.load_sample(dict(target), window_dims=(20, 30))
    our_sample = pair.ours.load_sample(dict(target), window_dims=(20, 30))
    assert our_sample['im'].shape[:2] == (20, 30)
    expected_nd = (math.ceil(target['height']), math.ceil(target['width']))
    assert nd_sample['im'].shape[:2] == expected_nd  # the box extent: keyword dropped
    # the documented spelling (in the target) agrees
    compare(pair, {**target, 'window_dims': (20, 30)})


def test_sampler_own_positive_windows_differ_only_by_float32(pair):
    """Each library's own get_positive(i): windows differ only by float32 rounding."""
    from sampler_core.target import center_extent_to_slices
    n_diff = 0
    for index, nd_index in enumerate(_nd_positive_indexes(pair)):
        for dims in [(64, 48), 'square']:
            nd_tr = pair.nd.regions.get_positive(nd_index)
            our_tr = pair.ours.regions.get_positive(index)
            nd_t = pair.nd.load_sample({**nd_tr, 'window_dims': dims}, with_annots=False)['target']
            our_t = pair.ours.load_sample({**our_tr, 'window_dims': dims},
                                          with_annots=False)['target']
            if nd_t['space_slice'] == our_t['space_slice']:
                continue
            n_diff += 1
            # explained by float32: our window code on float32-rounded centres = ndsampler's
            center32 = (float(np.float32(our_tr['cy'])), float(np.float32(our_tr['cx'])))
            assert center_extent_to_slices(center32, our_t['window_dims']) == nd_t['space_slice']
            # and ndsampler agrees with us when it computes the centre in float64 (aid target)
            nd_aid_t = pair.nd.load_sample({'aid': our_tr['aid'], 'window_dims': dims},
                                           with_annots=False)['target']
            assert nd_aid_t['space_slice'] == our_t['space_slice']
    if pair.name == 'vidshapes8':
        assert n_diff >= 1  # aid 15: cy = -18.1 + 132.2 / 2 = 47.99999999999999 (float64)


def test_sampler_grayscale_matches_and_keeps_channel_axis(synthetic_pair):
    """load_sample agrees on grayscale data; our load_image keeps (H, W, 1)."""
    pair = synthetic_pair
    gid = sorted(pair.dset.imgs)[3]
    for target in [{'gid': gid}, {'gid': gid, 'cx': 5, 'cy': 5, 'width': 30, 'height': 20,
                                  'pad': (4, 4)}]:
        compare(pair, target)
    nd_image = np.asarray(pair.nd.load_image(gid))
    our_image = np.asarray(pair.ours.load_image(gid))
    assert our_image.shape == nd_image.shape + (1,)
    assert np.array_equal(our_image[..., 0], nd_image)
