"""The window model: ``window_boxes`` (the one vectorised window rule) is the window
``load_sample`` cuts, for targets given by aid, by gid + centre and by slices.

The expected windows and pixels come from ``synthetic.expected_window`` /
``expected_pixels`` (the documented rules written out independently) and the
image decoded with PIL.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import synthetic
from sampler_core.window import Window, pad_boxes, resolve, window_boxes

SETTINGS = dict(deadline=None, max_examples=60,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])

pad_values = st.integers(min_value=0, max_value=30)
pads = st.one_of(st.none(), pad_values, st.tuples(pad_values, pad_values),
                 st.tuples(st.tuples(pad_values, pad_values), st.tuples(pad_values, pad_values)))
window_dims = st.one_of(st.none(), st.just('square'),
                        st.tuples(st.integers(1, 200), st.integers(1, 200)))
coords = st.one_of(st.floats(min_value=-300, max_value=1500, allow_nan=False),
                   st.integers(-600, 3000).map(lambda v: v / 2))
extents = st.floats(min_value=0.25, max_value=300, allow_nan=False)


@st.composite
def targets(draw, dset):
    """``(target, (cx, cy, width, height, window_dims))``: one target, its table row."""
    form = draw(st.sampled_from(['aid', 'center', 'slices']))
    pad = draw(pads)
    if form == 'aid':
        aid = draw(st.sampled_from(sorted(dset.anns)))
        x, y, w, h = dset.anns[aid]['bbox']
        wd = draw(window_dims)
        assume(wd not in (None, 'square') or (w > 0 and h > 0))
        target = {'aid': aid, 'window_dims': wd, 'pad': pad}
        row = (x + w / 2, y + h / 2, w, h, wd)
    elif form == 'center':
        gid = draw(st.sampled_from(sorted(dset.imgs)))
        cx, cy, w, h = draw(coords), draw(coords), draw(extents), draw(extents)
        wd = draw(window_dims)
        target = {'gid': gid, 'cx': cx, 'cy': cy, 'width': w, 'height': h,
                  'window_dims': wd, 'pad': pad}
        row = (cx, cy, w, h, wd)
    else:
        gid = draw(st.sampled_from(sorted(dset.imgs)))
        y0, x0 = draw(st.integers(-100, 1000)), draw(st.integers(-100, 1000))
        h, w = draw(st.integers(1, 200)), draw(st.integers(1, 200))
        target = {'gid': gid, 'slices': (slice(y0, y0 + h), slice(x0, x0 + w)), 'pad': pad}
        # a slice is the window of its own centre and size
        row = (x0 + w / 2, y0 + h / 2, w, h, (h, w))
    return target, row


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    return synthetic.make_synthetic_dataset(tmp_path_factory.mktemp('synth_window'), seed=3)


@pytest.fixture(scope='module')
def synth_sampler(synth):
    import sampler_core
    return sampler_core.CocoSampler(synth, backend=None)


@settings(**SETTINGS)
@given(data=st.data())
def test_window_boxes_are_the_windows_load_sample_cuts(synth, synth_sampler, source_pixels,
                                                       data):
    target, (cx, cy, w, h, wd) = data.draw(targets(synth))
    y0, y1, x0, x1 = synthetic.expected_window(target, synth)
    py0, py1, px0, px1 = synthetic.padded_window((y0, y1, x0, x1), target['pad'])

    boxes, padded = window_boxes([cx], [cy], [w], [h], wd, pad=target['pad'])
    assert boxes.tolist() == [[x0, y0, x1, y1]]
    assert padded.tolist() == [[px0, py0, px1, py1]]

    sample = synth_sampler.load_sample(dict(target), with_annots=False)
    sl = sample['target']['space_slice']
    assert [sl[1].start, sl[0].start, sl[1].stop, sl[0].stop] == [x0, y0, x1, y1]
    assert sample['params']['sample_tlbr'].data.tolist() == [px0, py0, px1, py1]
    gid = sample['target']['gid']
    expect = synthetic.expected_pixels(source_pixels(synth, gid), (py0, py1, px0, px1))
    assert np.array_equal(sample['im'], expect)


@settings(**SETTINGS)
@given(data=st.data())
def test_resolve_holds_the_window_pad_and_transform(synth, synth_sampler, data):
    target, _ = data.draw(targets(synth))
    y0, y1, x0, x1 = synthetic.expected_window(target, synth)
    (pt, pb), (pl, pr) = synthetic.normalize_pad(target['pad'])
    win = resolve(synth_sampler, dict(target))
    assert isinstance(win, Window)
    assert {f.name for f in dataclasses.fields(Window)} <= set(vars(win))
    assert win.window == ((y0, y1), (x0, x1))
    assert win.pad == ((pt, pb), (pl, pr))
    assert win.padded_ltrb == (x0 - pl, y0 - pt, x1 + pr, y1 + pb)
    assert win.frames == (win.target['gid'],) and win.space == 'image'
    # the padded window's top-left corner goes to the sample's origin
    assert win.sample_from_space.matrix.tolist() == [
        [1.0, 0.0, -(x0 - pl)], [0.0, 1.0, -(y0 - pt)], [0.0, 0.0, 1.0]]


def test_resolve_video_target_frames_and_scale():
    import sampler_core
    sampler = sampler_core.CocoSampler.demo('vidshapes1', num_frames=3, image_size=(32, 32))
    win = resolve(sampler, {'vidid': 1, 'time_slice': slice(-1, 2), 'scale': (0.5, 0.25),
                            'space_slice': (slice(4, 20), slice(8, 24)), 'pad': (1, 2, 3)})
    gids = list(sampler.dset.index.vidid_to_gids[1])
    assert win.frames == (None, None, gids[0], gids[1], gids[2])
    assert win.time_pad == (1, 1) and win.pad == ((2, 2), (3, 3))
    assert win.space == 'video' and win.window == ((4, 20), (8, 24))
    # (x, y): scale sx=0.25, sy=0.5 after moving (8 - 3, 4 - 2) to the origin
    assert win.sample_from_space.matrix.tolist() == [
        [0.25, 0.0, -5 * 0.25], [0.0, 0.5, -2 * 0.5], [0.0, 0.0, 1.0]]


def test_window_boxes_errors_name_the_value():
    with pytest.raises(ValueError, match='window_dims'):
        window_boxes([1.0], [1.0], [2.0], [2.0], 'round')
    with pytest.raises(ValueError, match='positive'):
        window_boxes([1.0], [1.0], [0.0], [2.0], None)
    with pytest.raises(ValueError, match='pad'):
        pad_boxes([[0, 0, 1, 1]], -1)


def test_read_defers_geometry_behind_the_kwimage_types(synth, synth_sampler):
    """Polygons and keypoints are built when first used; pickles hold plain kwimage lists."""
    import pickle

    import kwimage
    aid = next(a for a, ann in sorted(synth.anns.items())
               if synthetic.polygon_xy(ann) and len(synthetic.keypoint_xy(ann)))
    sample = synth_sampler.load_sample({'aid': aid, 'window_dims': (200, 200)})
    annots = sample['annots']
    ssegs, kpts = annots['rel_ssegs'], annots['rel_kpts']
    n = len(annots['aids'])
    assert isinstance(ssegs, kwimage.PolygonList) and isinstance(kpts, kwimage.PointsList)
    assert len(ssegs) == len(kpts) == n and '_data' not in vars(ssegs)   # nothing built yet
    x0, y0 = sample['params']['sample_tlbr'].data[:2]
    i = annots['aids'].tolist().index(aid)
    ring = synthetic.polygon_xy(synth.anns[aid])[0] - [x0, y0]
    plain = pickle.loads(pickle.dumps(ssegs))
    assert type(plain) is kwimage.PolygonList and len(plain) == n
    for polys in (ssegs, plain):
        got = polys.data[i]
        got = got.data[0] if isinstance(got, kwimage.MultiPolygon) else got
        np.testing.assert_allclose(got.exterior.data, ring, rtol=0, atol=1e-9)
    want_kp = synthetic.keypoint_xy(synth.anns[aid]) - [x0, y0]
    plain_kp = pickle.loads(pickle.dumps(kpts))
    assert type(plain_kp) is kwimage.PointsList and plain_kp.meta['classes'] is not None
    for pts in (kpts, plain_kp):
        np.testing.assert_allclose(pts.data[i].xy, want_kp, rtol=0, atol=1e-9)


def _imported_modules(module) -> set:
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(module))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f'{node.module}.{a.name}' for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_read_path_modules_import_no_circle():
    """frames -> read (lazily) only; read and video never import frames; video does not read."""
    from sampler_core import frames, read, video, window
    assert not {m for m in _imported_modules(frames) if m.startswith('sampler_core.video')}
    for module in (read, video, window):
        assert not {m for m in _imported_modules(module) if m.startswith('sampler_core.frames')}
    assert 'sampler_core.video' not in _imported_modules(read)
    # the delayed_image work-arounds are in one module, used by the reader only
    assert 'sampler_core._delayed_compat' in _imported_modules(read)
    assert not hasattr(video, '_safe_nearest_warp_cls') and not hasattr(video, 'load_sample')
