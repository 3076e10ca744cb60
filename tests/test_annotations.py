"""Annotations of sampled windows: which ones, and their window-relative geometry.

Expectations come from ``synthetic`` oracles that loop over the dataset's raw
annotation dicts (no sampler_core code): an annotation belongs to the *padded*
window when the fraction of its box inside it is ``> 0`` and ``>= visible_thresh``
(touching a border is not overlapping; a zero-size box counts when its point is
inside the half-open window), see docs/design.md.
"""
from __future__ import annotations

import numpy as np
import pytest

import synthetic
from conftest import BACKEND_IDS, BACKENDS

DATASETS = ['shapes8_dset', 'vidshapes2_dset', 'synth_dset']
DATASET_IDS = ['shapes8', 'vidshapes2', 'synth']
THRESHOLDS = [0.0, 0.1, 0.5, 1.0]


def window_grid(H, W, seed):
    """Deterministic windows ``(y0, y1, x0, x1)`` all over (and off) an image."""
    rng = np.random.RandomState(seed)
    out = [(0, H, 0, W), (-50, H + 50, -50, W + 50), (H, H + 10, 0, W), (0, H, W, W + 5)]
    for _ in range(14):
        h = int(rng.randint(1, max(2, H // 2)))
        w = int(rng.randint(1, max(2, W // 2)))
        y0 = int(rng.randint(-h, H + 1))
        x0 = int(rng.randint(-w, W + 1))
        out.append((y0, y0 + h, x0, x0 + w))
    return out


def slices_target(gid, window, **extra):
    y0, y1, x0, x1 = window
    return dict({'gid': gid, 'slices': (slice(y0, y1), slice(x0, x1))}, **extra)


def assert_aids_match(got, dset, gid, outer, thresh):
    got = [int(a) for a in got]
    assert len(got) == len(set(got)), f'duplicate aids {got}'
    sure, maybe = synthetic.expected_aids(dset, gid, outer, thresh)
    assert sure <= set(got) <= sure | maybe, (
        f'window {outer} thresh={thresh}: missing {sorted(sure - set(got))}, '
        f'extra {sorted(set(got) - sure - maybe)}')


@pytest.mark.parametrize('thresh', THRESHOLDS, ids=[f'thresh{t}' for t in THRESHOLDS])
@pytest.mark.parametrize('dset_name', DATASETS, ids=DATASET_IDS)
def test_annotations_aids_match_independent_overlap(request, sampler_factory, dset_name, thresh):
    dset = request.getfixturevalue(dset_name)
    sampler = sampler_factory(dset, 'npy')
    for gid in sorted(dset.imgs):
        img = dset.imgs[gid]
        for k, window in enumerate(window_grid(img['height'], img['width'], seed=gid)):
            pad = [(0, 0), (3, 5), ((0, 7), (11, 2))][k % 3]
            target = slices_target(gid, window, pad=pad)
            sample = sampler.load_sample(target, visible_thresh=thresh, with_annots=['boxes'])
            outer = synthetic.padded_window(window, pad)
            assert_aids_match(sample['annots']['aids'], dset, gid, outer, thresh)
            # the same set through the other public entry points
            y0, y1, x0, x1 = outer
            assert_aids_match(sampler.regions.overlapping_aids(gid, [x0, y0, x1, y1], thresh),
                              dset, gid, outer, thresh)


LOAD_ANNOTATION_TARGETS = {
    'center-pad': lambda g, H, W: {'gid': g, 'cx': W / 4, 'cy': H / 4, 'window_dims': (H // 2, W // 3),
                                   'pad': (10, 30)},
    'slices-thresh': lambda g, H, W: {'gid': g, 'slices': (slice(-20, H // 2), slice(W // 2, W + 9)),
                                      'visible_thresh': 0.5},
    'whole': lambda g, H, W: {'gid': g},
}


@pytest.mark.parametrize('kind', list(LOAD_ANNOTATION_TARGETS), ids=list(LOAD_ANNOTATION_TARGETS))
@pytest.mark.parametrize('dset_name', DATASETS, ids=DATASET_IDS)
def test_annotations_load_annotations_of_target(request, sampler_factory, dset_name, kind):
    """``load_annotations(target)`` lists the annotations of the target's padded window."""
    dset = request.getfixturevalue(dset_name)
    sampler = sampler_factory(dset, None)
    for gid in sorted(dset.imgs):
        img = dset.imgs[gid]
        target = LOAD_ANNOTATION_TARGETS[kind](gid, img['height'], img['width'])
        anns = sampler.load_annotations(dict(target))
        outer = synthetic.padded_window(synthetic.expected_window(target, dset), target.get('pad'))
        assert_aids_match([a['id'] for a in anns], dset, gid, outer,
                          target.get('visible_thresh', 0.0))
        sample = sampler.load_sample(dict(target), visible_thresh=target.get('visible_thresh', 0.0))
        assert sorted(a['id'] for a in anns) == sorted(sample['annots']['aids'].tolist())


@pytest.mark.parametrize('dset_name', DATASETS, ids=DATASET_IDS)
def test_annotations_visible_fractions_match(request, sampler_factory, dset_name):
    dset = request.getfixturevalue(dset_name)
    sampler = sampler_factory(dset, None)
    for gid in sorted(dset.imgs)[:3]:
        img = dset.imgs[gid]
        for window in window_grid(img['height'], img['width'], seed=100 + gid)[:8]:
            sample = sampler.load_sample(slices_target(gid, window), with_annots=['boxes'])
            y0, y1, x0, x1 = window
            annots = sample['annots']
            assert len(annots['visible']) == len(annots['aids'])
            for aid, frac in zip(annots['aids'].tolist(), annots['visible']):
                ltrb = synthetic.annotation_ltrb(dset.anns[aid])
                want = synthetic.visible_fraction(ltrb, (x0, y0, x1, y1))
                assert frac == pytest.approx(want, abs=1e-12)


# ----------------------------------------------------------------- hand-made borders
@pytest.fixture(scope='module')
def border_dset(tmp_path_factory):
    """One 100x100 image: box A (ltrb 10,10,30,30), point P at (30, 30)."""
    dpath = tmp_path_factory.mktemp('border')
    dataset = synthetic.new_dataset_dict()
    synthetic.write_image(dpath / 'img.png', synthetic.coordinate_image(100, 100, seed=5))
    dataset['images'].append({'id': 1, 'file_name': 'img.png', 'width': 100, 'height': 100})
    dataset['annotations'] += [
        {'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [10, 10, 20, 20],  # A
         'keypoints': [{'xy': [10, 10], 'keypoint_category_id': 1},   # top-left corner
                       {'xy': [30, 20], 'keypoint_category_id': 2},   # on the right edge
                       {'xy': [20, 30], 'keypoint_category_id': 1}]},  # on the bottom edge
        {'id': 2, 'image_id': 1, 'category_id': 3, 'bbox': [30, 30, 0, 0]},    # P
    ]
    return synthetic.build_coco(dataset, dpath)


A, P = 1, 2
#: (id, slices window (y0, y1, x0, x1), pad, visible_thresh, expected aids)
BORDER_CASES = [
    ('A-touches-left-edge-of-window', (0, 100, 30, 60), None, 0.0, [P]),
    ('A-touches-right-edge-of-window', (0, 100, 0, 10), None, 0.0, []),
    ('A-touches-top-edge-of-window', (30, 50, 0, 100), None, 0.0, [P]),
    ('A-touches-bottom-edge-of-window', (0, 10, 0, 100), None, 0.0, []),
    ('A-touches-corner', (30, 40, 30, 40), None, 0.0, [P]),
    ('A-one-column-inside', (0, 100, 29, 31), None, 0.0, [A, P]),
    ('A-one-column-below-thresh', (0, 100, 29, 31), None, 0.1, [P]),
    ('P-on-right-border-is-outside', (0, 100, 0, 30), None, 0.0, [A]),
    ('P-on-bottom-border-is-outside', (0, 30, 0, 100), None, 0.0, [A]),
    ('A-half-at-thresh-half', (0, 100, 20, 100), None, 0.5, [A, P]),
    ('A-half-above-thresh', (0, 100, 20, 100), None, 0.51, [P]),
    ('A-fully-inside-thresh-one', (0, 100, 0, 100), None, 1.0, [A, P]),
    ('A-touches-padded-window', (0, 100, 31, 60), (0, 1), 0.0, [P]),
    ('A-inside-padded-window-only', (0, 100, 32, 60), (0, 3), 0.0, [A, P]),
    ('P-inside-asym-pad-only', (0, 29, 0, 29), ((0, 2), (0, 2)), 0.0, [A, P]),
    ('nothing-far-away', (60, 100, 60, 100), None, 0.0, []),
]


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize('case', BORDER_CASES, ids=[c[0] for c in BORDER_CASES])
def test_annotations_touching_is_not_overlapping(border_dset, sampler_factory, case, backend):
    _, window, pad, thresh, want = case
    sampler = sampler_factory(border_dset, backend)
    outer = synthetic.padded_window(window, pad)
    sure, maybe = synthetic.expected_aids(border_dset, 1, outer, thresh, eps=0)
    assert (sure, maybe) == (set(want), set())  # the oracle agrees with the hand analysis
    sample = sampler.load_sample(slices_target(1, window, pad=pad), visible_thresh=thresh)
    assert sorted(sample['annots']['aids'].tolist()) == sorted(want)
    if thresh == 0.0:
        y0, y1, x0, x1 = outer
        assert sorted(sampler.regions.overlapping_aids(1, [x0, y0, x1, y1])) == sorted(want)


#: (id, window (y0, y1, x0, x1), keypoints of A expected to survive clipping, image space)
KEYPOINT_BORDER_CASES = [
    ('right-and-bottom-borders-are-outside', (0, 30, 0, 30), [[10, 10]]),
    ('left-and-top-borders-are-inside', (10, 40, 10, 40), [[10, 10], [30, 20], [20, 30]]),
    ('one-past-the-border', (0, 31, 0, 31), [[10, 10], [30, 20], [20, 30]]),
    ('left-edge-exclusive', (0, 100, 11, 100), [[30, 20], [20, 30]]),
]


@pytest.mark.parametrize('case', KEYPOINT_BORDER_CASES, ids=[c[0] for c in KEYPOINT_BORDER_CASES])
def test_annotations_clipped_keypoints_half_open_window(border_dset, sampler_factory, case):
    _, (y0, y1, x0, x1), want = case
    sampler = sampler_factory(border_dset, None)
    sample = sampler.load_sample(slices_target(1, (y0, y1, x0, x1), clip_annots=True))
    i = sample['annots']['aids'].tolist().index(A)
    kpts = sample['annots']['clipped_dets'][0].data['keypoints'].data[i]
    np.testing.assert_array_equal(np.asarray(kpts.xy).reshape(-1, 2),
                                  np.array(want, dtype=np.float64).reshape(-1, 2) - [x0, y0])
    assert len(sample['annots']['rel_kpts'].data[i]) == 3  # unclipped keeps all


def test_annotations_visible_thresh_out_of_range_is_value_error(border_dset, sampler_factory):
    sampler = sampler_factory(border_dset, None)
    for bad in [-0.1, 1.5]:
        with pytest.raises(ValueError):
            sampler.load_sample({'gid': 1}, visible_thresh=bad)


# ----------------------------------------------------------------- geometry
def geometry_targets(dset):
    """Targets whose windows cut through annotations, with and without pad."""
    out = []
    gids = sorted(dset.imgs, key=lambda g: -len(dset.index.gid_to_aids[g]))[:2]
    for gid in gids:
        img = dset.imgs[gid]
        H, W = img['height'], img['width']
        aids = sorted(dset.index.gid_to_aids[gid])
        out.append({'gid': gid})
        out.append({'gid': gid, 'pad': (13, 21)})
        out.append({'aid': aids[0], 'pad': ((4, 0), (0, 9))})
        out.append({'aid': aids[-1], 'window_dims': (40, 40)})
        out.append({'gid': gid, 'slices': (slice(-20, H // 2), slice(W // 3, W + 15))})
        out.append({'gid': gid, 'cx': W / 2, 'cy': H / 2, 'window_dims': (H // 3, W // 4),
                    'pad': 6})
    return out


def _multipolygon_exteriors(mpoly):
    """Exterior rings (``(n, 2)`` arrays) of a kwimage (Multi)Polygon."""
    import kwimage
    if isinstance(mpoly, kwimage.Polygon):
        polys = [mpoly]
    else:
        polys = list(mpoly.to_multi_polygon().data)
    return [np.asarray(p.data['exterior'].data, dtype=np.float64) for p in polys]


def _shapely_area(mpoly):
    return 0.0 if mpoly is None else float(mpoly.to_shapely().area)


def _independent_clipped_area(rings, H, W):
    """Area of (repaired) polygon rings intersected with ``[0, W] x [0, H]`` (shapely)."""
    import shapely
    from shapely.geometry import Polygon, box
    total = 0.0
    geoms = []
    for ring in rings:
        if len(ring) < 3:
            continue
        geom = Polygon(ring)
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        geoms.append(geom)
    if not geoms:
        return 0.0
    union = shapely.union_all(geoms)
    inter = union.intersection(box(0, 0, W, H))
    total = sum(g.area for g in getattr(inter, 'geoms', [inter])
                if g.geom_type in ('Polygon', 'MultiPolygon'))
    return total


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize('dset_name', DATASETS, ids=DATASET_IDS)
def test_annotations_rel_geometry_is_translated(request, sampler_factory, dset_name, backend):
    import kwimage
    dset = request.getfixturevalue(dset_name)
    sampler = sampler_factory(dset, backend)
    checked = 0
    for target in geometry_targets(dset):
        sample = sampler.load_sample(dict(target))
        window = synthetic.expected_window(target, dset)
        y0, y1, x0, x1 = synthetic.padded_window(window, target.get('pad'))
        annots = sample['annots']
        aids = annots['aids'].tolist()
        n = len(aids)
        assert len(annots['rel_boxes']) == len(annots['cids']) == n
        assert len(annots['rel_ssegs']) == len(annots['rel_kpts']) == n
        assert annots['cids'].tolist() == [dset.anns[a]['category_id'] for a in aids]
        # boxes
        raw = np.array([dset.anns[a]['bbox'] for a in aids], dtype=np.float64).reshape(-1, 4)
        want = raw - np.array([x0, y0, 0, 0])
        got = np.asarray(annots['rel_boxes'].to_xywh().data, dtype=np.float64)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        # tf_rel_to_abs maps them back onto the dataset's boxes
        tf = np.asarray(sample['params']['tf_rel_to_abs'], dtype=np.float64)
        assert tf.shape == (3, 3)
        back = annots['rel_boxes'].warp(tf).to_xywh().data
        np.testing.assert_allclose(np.asarray(back, dtype=np.float64), raw, rtol=0, atol=1e-9)
        np.testing.assert_allclose(tf @ np.array([0, 0, 1.0]), [x0, y0, 1])
        # the main annotation is pointed at
        if 'aid' in target:
            assert aids[sample['target']['annot_idx']] == target['aid']
        for i, aid in enumerate(aids):
            ann = dset.anns[aid]
            # segmentations: every exterior ring shifted by the window corner
            rings = synthetic.polygon_xy(ann)
            sseg = annots['rel_ssegs'].data[i]
            if rings:
                got_rings = _multipolygon_exteriors(sseg)
                assert len(got_rings) == len(rings)
                for g, r in zip(got_rings, rings):
                    np.testing.assert_allclose(g, r - [x0, y0], rtol=0, atol=1e-9)
            else:
                assert sseg is None
            # keypoints: all of them (unclipped), shifted
            kxy = synthetic.keypoint_xy(ann)
            kpts = annots['rel_kpts'].data[i]
            if len(kxy):
                assert isinstance(kpts, kwimage.Points)
                np.testing.assert_allclose(kpts.xy, kxy - [x0, y0], rtol=0, atol=1e-9)
            else:
                assert kpts is None or len(kpts) == 0
            checked += 1
    assert checked > 10


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize('dset_name', DATASETS, ids=DATASET_IDS)
def test_annotations_clipped_dets(request, sampler_factory, dset_name, backend):
    dset = request.getfixturevalue(dset_name)
    sampler = sampler_factory(dset, backend)
    cut_polys = 0
    for target in geometry_targets(dset):
        plain = sampler.load_sample(dict(target))
        sample = sampler.load_sample(dict(target, clip_annots=True))
        window = synthetic.expected_window(target, dset)
        y0, y1, x0, x1 = synthetic.padded_window(window, target.get('pad'))
        H, W = y1 - y0, x1 - x0
        annots = sample['annots']
        aids = annots['aids'].tolist()
        assert aids == plain['annots']['aids'].tolist()
        assert len(annots['clipped_dets']) == 1
        dets = annots['clipped_dets'][0]
        assert len(dets) == len(aids)
        # unclipped fields stay unclipped
        np.testing.assert_array_equal(annots['rel_boxes'].to_ltrb().data,
                                      plain['annots']['rel_boxes'].to_ltrb().data)
        # boxes: clipped to [0, W] x [0, H]
        raw = np.array([dset.anns[a]['bbox'] for a in aids], dtype=np.float64).reshape(-1, 4)
        ltrb = np.concatenate([raw[:, :2], raw[:, :2] + raw[:, 2:]], axis=1) - [x0, y0, x0, y0]
        want = np.stack([ltrb[:, 0].clip(0, W), ltrb[:, 1].clip(0, H),
                         ltrb[:, 2].clip(0, W), ltrb[:, 3].clip(0, H)], axis=1)
        np.testing.assert_allclose(np.asarray(dets.boxes.to_ltrb().data, dtype=np.float64),
                                   want, rtol=0, atol=1e-9)
        for i, aid in enumerate(aids):
            ann = dset.anns[aid]
            rings = [r - [x0, y0] for r in synthetic.polygon_xy(ann)]
            clipped = dets.data['segmentations'].data[i]
            full = _independent_clipped_area(rings, 1e12, 1e12) if rings else 0.0
            want_area = _independent_clipped_area(rings, H, W) if rings else 0.0
            if want_area == 0:
                assert clipped is None or _shapely_area(clipped) == pytest.approx(0, abs=1e-6)
            else:
                assert _shapely_area(clipped) == pytest.approx(want_area, rel=1e-6, abs=1e-6)
                for ext in _multipolygon_exteriors(clipped):
                    assert (ext >= -1e-6).all() and (ext[:, 0] <= W + 1e-6).all() \
                        and (ext[:, 1] <= H + 1e-6).all()
                if want_area < full - 1e-6:
                    cut_polys += 1
            # keypoints: only those inside the half-open window remain
            kxy = synthetic.keypoint_xy(ann) - [x0, y0]
            inside = kxy[(kxy[:, 0] >= 0) & (kxy[:, 0] < W) & (kxy[:, 1] >= 0) & (kxy[:, 1] < H)]
            kpts = dets.data['keypoints'].data[i]
            got = np.zeros((0, 2)) if kpts is None else np.asarray(kpts.xy).reshape(-1, 2)
            np.testing.assert_allclose(got, inside, rtol=0, atol=1e-9)
    assert cut_polys > 0, 'no polygon was actually cut by a window: the test is too weak'


def test_annotations_with_annots_boxes_only(synth_dset, sampler_factory):
    sampler = sampler_factory(synth_dset, None)
    full = sampler.load_sample({'gid': 1})
    boxes_only = sampler.load_sample({'gid': 1}, with_annots=['boxes'])
    assert boxes_only['annots']['aids'].tolist() == full['annots']['aids'].tolist()
    np.testing.assert_array_equal(boxes_only['annots']['rel_boxes'].data,
                                  full['annots']['rel_boxes'].data)
    assert all(s is None for s in boxes_only['annots']['rel_ssegs'].data)
    assert all(k is None for k in boxes_only['annots']['rel_kpts'].data)
    assert any(s is not None for s in full['annots']['rel_ssegs'].data)


# ----------------------------------------------------------------- odd annotations
@pytest.fixture(scope='module')
def odd_dset(tmp_path_factory):
    """One 100x100 image: a NaN polygon (1), 5 keypoint numbers (2), a good triangle (3),
    an infinite keypoint (4)."""
    dpath = tmp_path_factory.mktemp('odd')
    dataset = synthetic.new_dataset_dict()
    synthetic.write_image(dpath / 'img.png', synthetic.coordinate_image(100, 100, seed=7))
    dataset['images'].append({'id': 1, 'file_name': 'img.png', 'width': 100, 'height': 100})
    dataset['annotations'] += [
        {'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [10, 10, 20, 20],
         'segmentation': [[10, 10, float('nan'), 10, 30, 30, 10, 30]]},
        {'id': 2, 'image_id': 1, 'category_id': 2, 'bbox': [40, 40, 20, 20],
         'keypoints': [45, 45, 2, 50, 50]},
        {'id': 3, 'image_id': 1, 'category_id': 1, 'bbox': [60, 60, 50, 10],
         'segmentation': [[60, 60, 110, 60, 60, 70]]},
        {'id': 4, 'image_id': 1, 'category_id': 2, 'bbox': [5, 70, 10, 10],
         'keypoints': [{'xy': [8, float('inf')], 'keypoint_category_id': 3}]},
    ]
    return synthetic.build_coco(dataset, dpath)


def _ours(record) -> list[str]:
    return [str(w.message) for w in record if 'sampler_core' in str(w.filename)]


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_annotations_odd_geometry_warns_once_and_keeps_boxes(odd_dset, tmp_path, backend):
    import warnings

    import sampler_core
    sampler = sampler_core.CocoSampler(odd_dset, backend=backend, workdir=tmp_path)
    window = slices_target(1, (0, 100, 0, 100), clip_annots=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        sample = sampler.load_sample(window)
        again = sampler.load_sample(dict(window, slices=(slice(0, 100), slice(0, 80))))
    messages = _ours(record)
    for aid, key in [(1, 'segmentation'), (2, 'keypoints'), (4, 'keypoints')]:
        named = [m for m in messages if m.startswith(f'annotation {aid}: {key}')]
        assert len(named) == 1, messages
    assert len(messages) == 3, messages
    assert sample['im'].shape == (100, 100, 3)
    assert np.array_equal(sample['im'], synthetic.read_image_pil(odd_dset.get_image_fpath(1)))
    annots = sample['annots']
    assert annots['aids'].tolist() == [1, 2, 3, 4]
    for dets in (annots['frame_dets'][0], annots['clipped_dets'][0]):
        assert dets.data['aids'].tolist() == [1, 2, 3, 4]
    ltrb = annots['frame_dets'][0].boxes.to_ltrb().data.tolist()
    assert ltrb == [[10, 10, 30, 30], [40, 40, 60, 60], [60, 60, 110, 70], [5, 70, 15, 80]]
    clipped = annots['clipped_dets'][0]
    assert clipped.boxes.to_ltrb().data.tolist()[2] == [60, 60, 100, 70]
    ssegs = clipped.data['segmentations'].data
    assert ssegs[0] is None and ssegs[1] is None and ssegs[3] is None
    # triangle (60,60)-(110,60)-(60,70) cut at x=100: area 250 - 0.5*10*2
    assert ssegs[2].to_shapely().area == pytest.approx(250 - 10, abs=1e-9)
    kpts = clipped.data['keypoints'].data
    assert kpts[1] is None and kpts[3] is None
    assert again['annots']['aids'].tolist() == [1, 2, 3, 4]
