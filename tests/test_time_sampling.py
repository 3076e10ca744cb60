"""Video time sampling (config ``time_steps`` / ``time_sampling`` / ``time_span``).

The frames an item reads are checked against an independent statement of the
rule (brute force over every placement, exact fractions), the pixels against the
decoded source frames, the annotations against the dataset's boxes, and the
random draw for its determinism per (seed, epoch, pool index). ``load_item``,
``SampleDataset`` and ``export-chips`` read the same frames.
"""
from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sampler_core import CocoSampler, SamplingConfig
from sampler_core.video import time_indices
from test_video import image_oracle_aids

DEMO = 'vidshapes3-frames6'


# ----------------------------------------------------------------------------- the rule
def _placed(n: int, length: int, want: int) -> int:
    """Start of the ``length`` consecutive frames inside ``[0, n)`` nearest ``want``
    (brute force over every placement)."""
    starts = range(0, n - length + 1)
    return min(starts, key=lambda a: abs(a - want))


def expected_frames(n, f, k, sampling, span=None):
    """The frames of the docs' rule, computed independently of ``time_indices``
    (``random`` excepted: its frames are checked by properties)."""
    if n <= k:
        return list(range(k))
    if sampling == 'contiguous':
        a = _placed(n, k, f - k // 2)
        return list(range(a, a + k))
    s = min(span or n, n)
    a = _placed(n, s, f - s // 2)
    if k == 1:
        return [f]
    grid = [a + math.floor(Fraction(j * (s - 1), k - 1) + Fraction(1, 2)) for j in range(k)]
    grid[int(np.argmin([abs(g - f) for g in grid]))] = f   # argmin: the earlier on a tie
    return grid


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 12), data=st.data(),
       sampling=st.sampled_from(['contiguous', 'uniform']))
def test_frames_follow_the_rule(n, k, data, sampling):
    f = data.draw(st.integers(0, n - 1), label='frame')
    span = None
    if sampling == 'uniform':
        span = data.draw(st.one_of(st.none(), st.integers(k, 50)), label='span')
    got = time_indices(n, f, k, sampling, span)
    assert got == expected_frames(n, f, k, sampling, span)
    assert len(got) == k and got == sorted(set(got))
    if n > k:
        assert f in got and 0 <= got[0] and got[-1] < n
    else:   # every frame, then padding
        assert got == list(range(k))


@settings(max_examples=300, deadline=None)
@given(n=st.integers(2, 40), k=st.integers(1, 10), seed=st.integers(0, 2 ** 31), data=st.data())
def test_random_frames_are_distinct_sorted_in_the_span_and_hold_the_target(n, k, seed, data):
    assume(n > k)
    f = data.draw(st.integers(0, n - 1), label='frame')
    span = data.draw(st.one_of(st.none(), st.integers(k, 50)), label='span')
    got = time_indices(n, f, k, 'random', span, rng=np.random.default_rng(seed))
    s = min(span or n, n)
    a = _placed(n, s, f - s // 2)
    assert len(got) == k and got == sorted(set(got)) and f in got
    assert a <= got[0] and got[-1] < a + s
    again = time_indices(n, f, k, 'random', span, rng=np.random.default_rng(seed))
    assert got == again


def test_random_frames_cover_the_span():
    """Over many draws every frame of the span is drawn (not only a fixed subset)."""
    seen = set()
    for seed in range(200):
        seen.update(time_indices(30, 12, 3, 'random', 9, rng=np.random.default_rng(seed)))
    assert seen == set(range(8, 17))   # span of 9 centred on 12: 12 - 4 .. 12 + 4


@pytest.mark.parametrize('frame, want', [(0, [0, 1, 2]), (1, [0, 1, 2]), (9, [7, 8, 9]),
                                         (8, [7, 8, 9]), (5, [4, 5, 6])])
def test_contiguous_frames_are_moved_inside_the_video(frame, want):
    assert time_indices(10, frame, 3) == want


@pytest.mark.parametrize('frame, want', [(0, [0, 4, 8]), (9, [1, 5, 9]), (5, [1, 5, 9]),
                                         (3, [0, 3, 8])])
def test_uniform_span_is_moved_inside_the_video(frame, want):
    # span 9 of a 10-frame video: [0, 9) or [1, 10); grid every 4 frames, snapped to frame
    assert time_indices(10, frame, 3, 'uniform', 9) == want


@pytest.mark.parametrize('kwargs, match', [
    (dict(n_frames=0, frame=0, time_steps=1), 'n_frames'),
    (dict(n_frames=5, frame=5, time_steps=1), 'frame'),
    (dict(n_frames=5, frame=0, time_steps=0), 'time_steps'),
    (dict(n_frames=5, frame=0, time_steps=2, sampling='sometimes'), "'sometimes'"),
    (dict(n_frames=5, frame=0, time_steps=3, sampling='uniform', time_span=2), 'time_span'),
    (dict(n_frames=9, frame=0, time_steps=3, sampling='random'), 'rng'),
])
def test_time_indices_refuses_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_indices(**kwargs)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize('fields, error, match', [
    ({'time_steps': 0}, ValueError, 'time_steps'),
    ({'time_steps': True}, TypeError, 'time_steps'),
    ({'time_steps': 2.5}, (TypeError, ValueError), 'time_steps'),
    ({'time_steps': 3, 'time_sampling': 'sometimes'}, ValueError, 'sometimes'),
    ({'time_sampling': 'uniform'}, ValueError, 'time_sampling.*needs time_steps'),
    ({'time_span': 5}, ValueError, 'time_span.*needs time_steps'),
    ({'time_steps': 3, 'time_span': 5}, ValueError, 'time_span.*contiguous'),
    ({'time_steps': 3, 'time_sampling': 'uniform', 'time_span': 2}, ValueError,
     'time_span=2'),
    ({'time_steps': 3, 'time_sampling': 'random', 'time_span': 0}, ValueError, 'time_span'),
    ({'time_steps': 3, 'split_by': 'image'}, ValueError, 'split_by="image".*use split_by "video"'),
    ({'time_steps': 2, 'split_by': 'block'}, ValueError, 'split_by="block"'),
])
def test_config_refuses_bad_time_fields(fields, error, match):
    with pytest.raises(error, match=match):
        SamplingConfig(**fields)


def test_time_fields_round_trip_and_version_1_files_are_unchanged(tmp_path):
    cfg = SamplingConfig(dataset=DEMO, time_steps=4, time_sampling='random', time_span=5,
                         window_dims=(32, 32))
    for name in ('c.yaml', 'c.json'):
        cfg.dump(tmp_path / name)
        back = SamplingConfig.load(tmp_path / name)
        assert back.to_dict() == cfg.to_dict()
        assert (back.time_steps, back.time_sampling, back.time_span) == (4, 'random', 5)
    old = SamplingConfig.loads('version: 1\ndataset: shapes8\nwindow_dims: [32, 32]\n')
    assert (old.version, old.time_steps, old.time_sampling, old.time_span) == \
        (2, None, 'contiguous', None)
    assert SamplingConfig.change_role(['time_steps', 'time_sampling', 'time_span']) == 'read'


def test_2d_dataset_refuses_time_steps():
    with pytest.raises(ValueError, match=r'"time_steps" is 3 .*no videos'):
        CocoSampler.from_config(SamplingConfig(dataset='shapes8', backend=None, n_pos=2,
                                               n_neg=1, time_steps=3))


# ----------------------------------------------------------------------------- sampling
@pytest.fixture(scope='module')
def demo_dset():
    from sampler_core.demo import load_demo
    return load_demo(DEMO)


@pytest.fixture(scope='module')
def frames_of(demo_dset):
    """``get(gid)``: the decoded source frame ``(H, W, 3)``."""
    import kwimage
    cache = {}

    def get(gid):
        if gid not in cache:
            cache[gid] = kwimage.imread(demo_dset.get_image_fpath(gid))
        return cache[gid]
    return get


def _crop(frame, ltrb):
    """``frame[y0:y1, x0:x1]`` with zeros outside (the oracle of a padded crop)."""
    x0, y0, x1, y1 = ltrb
    out = np.zeros((y1 - y0, x1 - x0, frame.shape[2]), dtype=frame.dtype)
    h, w = frame.shape[:2]
    sy0, sy1, sx0, sx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    return out


@pytest.mark.parametrize('sampling, span', [('contiguous', None), ('uniform', None),
                                            ('uniform', 4), ('random', 4), ('random', None)])
def test_items_read_exactly_the_chosen_frames(demo_dset, frames_of, sampling, span):
    cfg = SamplingConfig(dataset=DEMO, backend=None, window_dims=(48, 40), pad=(3, 5),
                         n_pos=6, n_neg=3, seed=2, time_steps=3, time_sampling=sampling,
                         time_span=span)
    sampler = CocoSampler.from_config(cfg)
    for index in range(sampler.n_samples):
        for epoch in (0, 1):
            pool = sampler.regions.get_item(index)
            sample = sampler.load_item(index, epoch=epoch)
            tr = sample['target']
            vid_gids = list(demo_dset.index.vidid_to_gids[demo_dset.imgs[pool['gid']]['video_id']])
            f = vid_gids.index(pool['gid'])
            if sampling == 'random':
                rng = np.random.default_rng([cfg.seed, epoch, index, 2])
                want = time_indices(len(vid_gids), f, 3, 'random', span, rng=rng)
                assert want == time_indices(len(vid_gids), f, 3, 'random', span,
                                            rng=cfg.time_rng(index, epoch))
            else:
                want = expected_frames(len(vid_gids), f, 3, sampling, span)
            gids = [vid_gids[i] for i in want]
            assert tr['time_indices'] == want and tr['gids'] == gids
            assert sample['params']['frame_gids'] == gids
            assert pool['gid'] in gids
            if tr['time_slice'] is not None:   # the slice selects exactly those frames
                assert list(range(len(vid_gids)))[tr['time_slice']] == want
            else:
                assert len({b - a for a, b in zip(want, want[1:])}) > 1
            ltrb = tuple(int(v) for v in sample['params']['sample_tlbr'].to_ltrb().data.ravel())
            assert (ltrb[2] - ltrb[0], ltrb[3] - ltrb[1]) == (40 + 10, 48 + 6)
            for t, gid in enumerate(gids):
                np.testing.assert_array_equal(sample['im'][t], _crop(frames_of(gid), ltrb))
                got = sorted(sample['annots']['frame_dets'][t].data['aids'].tolist())
                assert got == image_oracle_aids(demo_dset, gid, ltrb), (index, t)
            again = sampler.load_sample(tr)   # the target says which frames: same sample
            np.testing.assert_array_equal(again['im'], sample['im'])


def test_random_frames_depend_only_on_seed_epoch_and_index():
    cfg = SamplingConfig(dataset=DEMO, backend=None, window_dims=(32, 32), n_pos=8, n_neg=4,
                         seed=7, time_steps=3, time_sampling='random')
    a, b = CocoSampler.from_config(cfg), CocoSampler.from_config(cfg)
    frames = {}
    for epoch in (0, 1, 2):
        for index in reversed(range(a.n_samples)):   # any order, any sampler
            fa = a.load_item(index, epoch=epoch)['target']['time_indices']
            assert fa == b.load_item(index, epoch=epoch)['target']['time_indices']
            frames[epoch, index] = fa
    assert any(frames[0, i] != frames[1, i] for i in range(a.n_samples))
    assert any(frames[0, i] != frames[0, j] for i in range(a.n_samples) for j in range(i)
               if a.regions.get_item(i)['gid'] == a.regions.get_item(j)['gid'])


def test_video_shorter_than_time_steps_is_padded(frames_of):
    cfg = SamplingConfig(dataset=DEMO, backend=None, window_dims=(32, 32), n_pos=3, n_neg=1,
                         time_steps=8, time_sampling='uniform')
    sampler = CocoSampler.from_config(cfg)
    sample = sampler.load_item(0)
    tr = sample['target']
    vid_gids = list(sampler.dset.index.vidid_to_gids[tr['vidid']])
    assert tr['time_indices'] == list(range(8)) and tr['time_slice'] == slice(0, 8)
    assert sample['params']['frame_gids'] == vid_gids + [None, None]
    assert sample['im'].shape == (8, 32, 32, 3)
    assert not sample['im'][6:].any()
    assert len(sample['annots']['frame_dets'][6]) == 0 and len(sample['annots']['frame_dets'][7]) == 0
    ltrb = tuple(int(v) for v in sample['params']['sample_tlbr'].to_ltrb().data.ravel())
    np.testing.assert_array_equal(sample['im'][5], _crop(frames_of(vid_gids[5]), ltrb))


def test_dataset_and_export_read_the_same_frames(tmp_path):
    torch = pytest.importorskip('torch')
    from sampler_core.prepare import export_chips
    from sampler_core.torch import SampleDataset, collate
    import kwcoco
    import kwimage
    cfg = SamplingConfig(dataset=DEMO, backend=None, window_dims=(32, 32), n_pos=4, n_neg=2,
                         seed=3, time_steps=3, time_sampling='random', time_span=5)
    path = tmp_path / 'cfg.yaml'
    cfg.dump(path)
    sampler = CocoSampler.from_config(path)
    ds = SampleDataset(path, mode='train')
    ds.set_epoch(1)
    for i in range(len(ds)):
        item = ds[i]
        pool_index = int(item['target']['pool_index'])
        sample = sampler.load_item(pool_index, epoch=1)
        assert item['image'].shape == (3, 3, 32, 32)   # (T, C, H, W)
        assert item['target']['frame_gids'].tolist() == sample['params']['frame_gids']
        np.testing.assert_allclose(item['image'].numpy(),
                                   sample['im'].transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
        assert item['frames'].tolist() == sample['annots']['rel_frame_index'].tolist()
    batch = collate([ds[0], ds[1]])
    assert batch['image'].shape == (2, 3, 3, 32, 32)
    assert batch['target']['frame_gids'].shape == (2, 3)

    written = export_chips(path, tmp_path / 'chips', verbose=0)
    out = kwcoco.CocoDataset(written['train'])
    assert len(out.videos()) == sampler.n_samples
    for index in range(sampler.n_samples):
        sample = sampler.load_item(index, target={'clip_annots': True})
        vid = out.index.videos[index + 1]
        gids = list(out.index.vidid_to_gids[vid['id']])
        assert [out.imgs[g]['source']['gid'] for g in gids] == sample['params']['frame_gids']
        assert [out.imgs[g]['source']['time_index'] for g in gids] == \
            sample['target']['time_indices']
        for t, g in enumerate(gids):
            np.testing.assert_array_equal(kwimage.imread(out.get_image_fpath(g)),
                                          sample['im'][t])
            assert sorted(a['source_aid'] for a in out.annots(gid=g).objs) == \
                sorted(sample['annots']['clipped_dets'][t].data['aids'].tolist())
    info = json.loads((tmp_path / 'chips' / 'train.kwcoco.json').read_text())['info'][0]
    assert info['config']['time_steps'] == 3


def test_video_split_keeps_every_frame_of_an_item_in_its_subset():
    """With split_by video, an item's frames are all frames of one video of its subset."""
    cfg = SamplingConfig(dataset=DEMO, backend=None, window_dims=(32, 32), n_pos=6, n_neg=2,
                         time_steps=4, time_sampling='random', split_by='video',
                         val_fraction=0.34)
    videos = {}
    for subset in ('train', 'val'):
        sampler = CocoSampler.from_config(cfg, subset=subset)
        videos[subset] = set()
        for i in range(sampler.n_samples):
            gids = sampler.load_item(i)['target']['gids']
            videos[subset].update(sampler.dset.imgs[g]['video_id'] for g in gids)
    assert videos['train'] and videos['val'] and not videos['train'] & videos['val']


def test_explorer_gallery_draws_the_pool_frame_of_each_item():
    """The gallery thumbnail of a time item is the pool window's own frame, drawn as the
    2-D window of that frame is."""
    from app import views
    from app.state import ExplorerState
    state = ExplorerState(dataset=DEMO, backend=None, window_dims=(48, 48), n_pos=3, n_neg=1)
    state.time_steps = 3
    state.time_sampling = 'uniform'
    assert state.message is None, state.message
    items = views.gallery(state.sampler, state.pools, 'pos', 3, thumb=48)
    for it in items:
        assert it['error'] is None, it['error']
        sample = state.sampler.load_item(it['index'])
        assert sample['im'].shape == (3, 48, 48, 3)
        tr = sample['target']
        flat = state.sampler.load_sample({'gid': tr['gid'], 'space_slice': tr['space_slice']})
        np.testing.assert_array_equal(it['image'], views.draw_sample(flat, views.POS_COLOR, 48))
    state.split_by = 'image'      # would leak through the other frames: refused
    assert state.split_by == 'none' and 'use split_by "video"' in state.message['text']


def test_explorer_widgets_of_the_time_and_resolution_fields():
    """Each field has a widget whose tooltip is the field's documentation, and the widget
    sets the state (the resolution text is parsed: a number, or kept as text)."""
    from app.layout import Explorer
    e = Explorer(DEMO, backend=None, n_pos=2, n_neg=1)
    for key in ('time_steps', 'time_sampling', 'time_span', 'resolution'):
        widget = getattr(e, key)
        assert widget.description == SamplingConfig.param[key].doc, key
    e.time_steps.value = 2
    e.time_sampling.value = 'random'
    e.time_span.value = 4
    assert (e.state.time_steps, e.state.time_sampling, e.state.time_span) == (2, 'random', 4)
    e.resolution.value = '0.5 GSD'   # the demo has no resolutions: refused, named
    assert e.state.resolution is None and e.resolution.value == ''
    assert 'has no "resolution"' in e.state.message['text']


def test_a_refused_text_widget_shows_the_state_value():
    """A text widget whose value the state refuses shows the state's value again (it kept
    the refused text: the restore reached the widget before the refused value did)."""
    from app.layout import Explorer
    e = Explorer('shapes8', backend=None, n_pos=2, n_neg=1)
    e.state.output_dims = (32, 32)
    e.scale.value = '0.5'           # exclusive with output_dims: refused
    assert e.state.scale is None and e.scale.value == ''
    assert 'exclusive' in e.state.message['text']


def test_window_centre_is_warped_into_video_space():
    """Images whose video grid is twice their pixels: the item's window is centred on the
    positive's box warped into video space (its box sits in the window's middle)."""
    import kwcoco
    dset = kwcoco.CocoDataset.demo('vidshapes1', num_frames=4, image_size=(64, 64)).copy()
    for img in dset.imgs.values():
        img['warp_img_to_vid'] = {'type': 'affine', 'scale': 2.0}
    for video in dset.index.videos.values():
        video['width'], video['height'] = 128, 128
    sampler = CocoSampler(dset, backend=None)
    sampler.apply_config(SamplingConfig(dataset='vidshapes1', backend=None, window_dims=(48, 48),
                                        n_pos=3, n_neg=0, time_steps=2))
    for index in range(3):
        pool = sampler.regions.get_item(index)
        sample = sampler.load_item(index)
        step = sample['params']['frame_gids'].index(pool['gid'])
        dets = sample['annots']['frame_dets'][step]
        row = dets.data['aids'].tolist().index(pool['aid'])
        cx, cy = dets.boxes.to_cxywh().data[row][:2]
        x0, y0 = (2 * pool['cx'] - 24) // 1, (2 * pool['cy'] - 24) // 1   # the window rule
        assert (cx, cy) == pytest.approx((2 * pool['cx'] - x0, 2 * pool['cy'] - y0))
        assert abs(cx - 24) <= 1 and abs(cy - 24) <= 1
