"""Property tests: random targets anywhere (far off the image too), random sizes and pads.

For every valid random target the sample must have shape ``window_dims + pad``,
pixels equal to the independent numpy crop, and annotations equal to the
independent overlap computation. Garbage targets may only fail with the
documented errors (ValueError / KeyError / TypeError).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import synthetic

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

DOCUMENTED_ERRORS = (ValueError, KeyError, TypeError)

# ---------------------------------------------------------------- strategies
coords = st.one_of(
    st.floats(min_value=-5000, max_value=6000, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-8000, max_value=8000).map(lambda v: v / 2),  # exact .0 / .5
    st.integers(min_value=-40, max_value=1240),                          # near the image
)
sizes = st.integers(min_value=1, max_value=260)
extents = st.one_of(st.floats(min_value=0.25, max_value=260, allow_nan=False), sizes)
pad_values = st.integers(min_value=0, max_value=40)
pads = st.one_of(
    st.none(),
    pad_values,
    st.tuples(pad_values, pad_values),
    st.tuples(st.tuples(pad_values, pad_values), st.tuples(pad_values, pad_values)),
)
thresholds = st.one_of(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]),
                       st.floats(min_value=0, max_value=1))
padkws = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=255).map(
        lambda v: {'mode': 'constant', 'constant_values': v}),
    st.sampled_from([{'mode': 'edge'}, {'mode': 'reflect'}, {'mode': 'symmetric'}]),
)


@st.composite
def valid_targets(draw, dset):
    gid = draw(st.sampled_from(sorted(dset.imgs)))
    H, W = dset.imgs[gid]['height'], dset.imgs[gid]['width']
    form = draw(st.sampled_from(['center', 'center', 'slices', 'aid', 'size-only', 'gid']))
    if form == 'center':
        target = {'gid': gid, 'cx': draw(coords), 'cy': draw(coords)}
        how = draw(st.sampled_from(['window_dims', 'extent', 'square']))
        if how == 'window_dims':
            target['window_dims'] = (draw(sizes), draw(sizes))
        else:
            target['width'], target['height'] = draw(extents), draw(extents)
            if how == 'square':
                target['window_dims'] = 'square'
    elif form == 'slices':
        y0 = draw(st.integers(min_value=-2 * H, max_value=3 * H))
        x0 = draw(st.integers(min_value=-2 * W, max_value=3 * W))
        key = draw(st.sampled_from(['slices', 'space_slice']))
        target = {'gid': gid, key: (slice(y0, y0 + draw(sizes)), slice(x0, x0 + draw(sizes)))}
    elif form == 'aid':
        aids = sorted(a for a, ann in dset.anns.items()
                      if ann['bbox'][2] > 0 and ann['bbox'][3] > 0)
        target = {'aid': draw(st.sampled_from(aids))}
        if draw(st.booleans()):
            target['window_dims'] = (draw(sizes), draw(sizes))
    elif form == 'size-only':
        target = {'gid': gid, 'window_dims': (draw(sizes), draw(sizes))}
    else:
        target = {'gid': gid}
    pad = draw(pads)
    if pad is not None:
        target['pad'] = pad
    padkw = draw(padkws)
    if padkw is not None:
        target['padkw'] = padkw
    return target


@pytest.fixture(scope='module')
def prop_sampler(synth_dset, sampler_factory):
    return sampler_factory(synth_dset, 'npy')


@pytest.fixture(scope='module')
def prop_pixels(synth_dset, source_pixels):
    return {gid: source_pixels(synth_dset, gid) for gid in synth_dset.imgs}


def _gid_of(target, dset):
    return target['gid'] if 'gid' in target else dset.anns[target['aid']]['image_id']


@settings(max_examples=200, **SETTINGS)
@given(data=st.data())
def test_properties_random_targets_match_oracle(synth_dset, prop_sampler, prop_pixels, data):
    dset = synth_dset
    target = data.draw(valid_targets(dset), label='target')
    thresh = data.draw(thresholds, label='visible_thresh')
    gid = _gid_of(target, dset)
    window = synthetic.expected_window(target, dset)
    outer = synthetic.padded_window(window, target.get('pad'))
    y0, y1, x0, x1 = outer
    H, W = prop_pixels[gid].shape[:2]
    off_image = y1 <= 0 or x1 <= 0 or y0 >= H or x0 >= W
    padkw = target.get('padkw')
    if off_image and padkw is not None and padkw['mode'] != 'constant':
        # extrapolating pad modes need at least one real pixel: documented error
        with pytest.raises(ValueError):
            prop_sampler.load_sample(dict(target), visible_thresh=thresh)
        return
    sample = prop_sampler.load_sample(dict(target), visible_thresh=thresh)
    im = sample['im']
    (pt, pb), (pl, pr) = synthetic.normalize_pad(target.get('pad'))
    wh, ww = window[1] - window[0], window[3] - window[2]
    assert tuple(sample['target']['window_dims']) == (wh, ww)
    assert im.shape[:2] == (wh + pt + pb, ww + pl + pr)
    np.testing.assert_array_equal(im, synthetic.expected_pixels(prop_pixels[gid], outer, padkw))
    got = sample['annots']['aids'].tolist()
    sure, maybe = synthetic.expected_aids(dset, gid, outer, thresh)
    assert len(got) == len(set(got))
    assert sure <= set(got) <= sure | maybe
    # relative boxes are the dataset's boxes minus the window corner
    raw = np.array([dset.anns[a]['bbox'] for a in got], dtype=np.float64).reshape(-1, 4)
    np.testing.assert_array_equal(sample['annots']['rel_boxes'].to_xywh().data,
                                  raw - [x0, y0, 0, 0])
    assert sample['params']['tf_rel_to_abs'][0:2, 2].tolist() == [x0, y0]


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_properties_scaled_windows_pad_like_2d_windows(synth_dset, prop_sampler, prop_pixels,
                                                       data):
    """Any pad mode with an integer nearest upscale: the oracle's window, repeated."""
    dset = synth_dset
    target = data.draw(valid_targets(dset), label='target')
    target.setdefault('padkw', data.draw(padkws.filter(lambda p: p is not None), label='padkw'))
    factor = data.draw(st.sampled_from([2, 3]), label='scale')
    gid = _gid_of(target, dset)
    outer = synthetic.padded_window(synthetic.expected_window(target, dset), target.get('pad'))
    y0, y1, x0, x1 = outer
    if (y1 - y0) * (x1 - x0) * factor * factor > 1_000_000:
        return                                   # keep the upscaled windows small
    H, W = prop_pixels[gid].shape[:2]
    scaled = dict(target, scale=factor, interpolation='nearest')
    if (y1 <= 0 or x1 <= 0 or y0 >= H or x0 >= W) and target['padkw']['mode'] != 'constant':
        with pytest.raises(ValueError, match='needs image pixels'):
            prop_sampler.load_sample(scaled)
        return
    im = prop_sampler.load_sample(scaled)['im']
    want = synthetic.expected_pixels(prop_pixels[gid], outer, target['padkw'])
    np.testing.assert_array_equal(im, want.repeat(factor, axis=0).repeat(factor, axis=1))


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_properties_clipped_geometry_stays_in_window(synth_dset, prop_sampler, data):
    import shapely
    from shapely.geometry import Polygon, box
    dset = synth_dset
    target = data.draw(valid_targets(dset), label='target')
    target.pop('padkw', None)
    target['clip_annots'] = True
    sample = prop_sampler.load_sample(dict(target))
    window = synthetic.expected_window(target, dset)
    y0, y1, x0, x1 = synthetic.padded_window(window, target.get('pad'))
    H, W = y1 - y0, x1 - x0
    dets = sample['annots']['clipped_dets'][0]
    ltrb = np.asarray(dets.boxes.to_ltrb().data).reshape(-1, 4)
    assert (ltrb[:, 0::2] >= 0).all() and (ltrb[:, 0::2] <= W).all()
    assert (ltrb[:, 1::2] >= 0).all() and (ltrb[:, 1::2] <= H).all()
    for i, aid in enumerate(sample['annots']['aids'].tolist()):
        ann = dset.anns[aid]
        kxy = synthetic.keypoint_xy(ann) - [x0, y0]
        inside = kxy[(kxy[:, 0] >= 0) & (kxy[:, 0] < W) & (kxy[:, 1] >= 0) & (kxy[:, 1] < H)]
        kpts = dets.data['keypoints'].data[i]
        got = np.zeros((0, 2)) if kpts is None else np.asarray(kpts.xy).reshape(-1, 2)
        np.testing.assert_array_equal(got, inside)
        rings = synthetic.polygon_xy(ann)
        clipped = dets.data['segmentations'].data[i]
        if not rings:
            assert clipped is None
            continue
        geom = Polygon(rings[0] - [x0, y0])
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        want = geom.intersection(box(0, 0, W, H)).area
        got_area = 0.0 if clipped is None else clipped.to_shapely().area
        assert got_area == pytest.approx(want, rel=1e-6, abs=1e-6)


# ---------------------------------------------------------------- garbage
junk_numbers = st.sampled_from([float('nan'), float('inf'), -float('inf'), 'ten', None, [1, 2],
                                -1, 0, 0.5, 2.5, 10, 3000, True])
junk_dims = st.one_of(
    st.sampled_from([(0, 10), (10, 0), (-5, 5), (3.5, 4), (1, 2, 3), 'foo', 'square', None,
                     (float('nan'), 4), 'extent', (10,), 0, -3, 16]),
    st.tuples(st.integers(-5, 50), st.integers(-5, 50)),
)
junk_pads = st.sampled_from([-1, (-1, 2), (1, 2, 3), 'ab', 'abc', ((1, 2, 3), 1), (1.5, 2),
                             ((0, -1), (0, 0)), 3, (2, 5), None, [[1, 2], [3, 4]]])
junk_slices = st.sampled_from([
    (slice(10, 5), slice(0, 10)), (slice(0, 10, 2), slice(0, 10)), (slice(0, 10),),
    (slice(0.5, 10), slice(0, 10)), 'all', (slice(None), slice(None)), (slice(-30, 10), slice(5, 6)),
    (slice(0, 0), slice(0, 4)), ([0, 10], [0, 10]),
])
junk_padkws = st.sampled_from([{'mode': 'bogus'}, 'reflect', {'mode': 'constant', 'constant_values': 1e9},
                               {'mode': 'constant', 'constant_values': -1}, {'mode': 'wrap'},
                               {'mode': 'constant', 'constant_values': 'x'}, None])


@st.composite
def garbage_targets(draw, dset):
    target = {}
    gid_choice = draw(st.sampled_from(['ok', 'ok', 'unknown', 'str', 'none', 'aid', 'bad-aid']))
    if gid_choice == 'ok':
        target['gid'] = draw(st.sampled_from(sorted(dset.imgs)))
    elif gid_choice == 'unknown':
        target['gid'] = 10 ** 6
    elif gid_choice == 'str':
        target['gid'] = 'one'
    elif gid_choice == 'aid':
        target['aid'] = draw(st.sampled_from(sorted(dset.anns)))
        if draw(st.booleans()):
            target['gid'] = draw(st.sampled_from(sorted(dset.imgs)))
    elif gid_choice == 'bad-aid':
        target['aid'] = draw(st.sampled_from([10 ** 6, 'a', [1]]))
    for key in ['cx', 'cy', 'width', 'height']:
        if draw(st.booleans()):
            target[key] = draw(junk_numbers)
    if draw(st.booleans()):
        target['window_dims'] = draw(junk_dims)
    if draw(st.booleans()):
        target['pad'] = draw(junk_pads)
    if draw(st.booleans()):
        target[draw(st.sampled_from(['slices', 'space_slice']))] = draw(junk_slices)
    if draw(st.booleans()):
        target['padkw'] = draw(junk_padkws)
    if draw(st.booleans()):
        target['dtype'] = draw(st.sampled_from(['float32', 'int8', 'nonsense', np.uint16]))
    return target


@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_properties_garbage_targets_raise_only_documented_errors(synth_dset, prop_sampler, data):
    target = data.draw(garbage_targets(synth_dset), label='target')
    thresh = data.draw(st.sampled_from([0.0, 0.5, 1.0, -0.5, 2.0, float('nan')]), label='thresh')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            sample = prop_sampler.load_sample(dict(target), visible_thresh=thresh)
    except DOCUMENTED_ERRORS:
        return
    # it worked: the result must be self-consistent
    assert 0.0 <= thresh <= 1.0, f'visible_thresh={thresh} accepted'
    im = sample['im']
    (pt, pb), (pl, pr) = synthetic.normalize_pad(sample['target'].get('pad'))
    wh, ww = sample['target']['window_dims']
    assert wh > 0 and ww > 0
    assert im.shape[:2] == (wh + pt + pb, ww + pl + pr)
    if target.get('slices') is None and target.get('space_slice') is None:
        # a centre that placed the window must have been a real number
        for key in ['cx', 'cy']:
            if key in sample['target']:
                assert math.isfinite(float(sample['target'][key]))
