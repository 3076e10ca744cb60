"""The explorer shows what the training options do: the statistics count what one epoch
repeats and draws, the galleries say each item's drawn size and scale, the overview marks
the windows ``max_nodata_fraction`` dropped, and every option has a widget with a tooltip.

Expected values come from the library's items (``load_item(i, epoch=0)``, their pixels and
params, ``SampleDataset.order``), never from the functions under test.
"""
from __future__ import annotations

import collections
import math

import numpy as np
import pytest

from app.state import ExplorerState


def _items(state, epoch=0):
    """``(pool index, sample)`` of every item of one training epoch, as SampleDataset
    orders and loads them."""
    pytest.importorskip('torch')
    from sampler_core.torch import SampleDataset
    ds = SampleDataset(state.sampler, mode='train')
    return [(int(p), state.sampler.load_item(int(p), epoch=epoch))
            for p in ds.order(epoch).tolist()]


def _window(sample) -> tuple:
    """The image-space window a sample read (ltrb, pad included) and its image."""
    (y0, y1), (x0, x1) = sample['params']['st_dims'][-2:]
    return (sample['target']['gid'], x0, y0, x1, y1)


def test_repeats_of_an_epoch_are_counted_from_its_items():
    """Balanced positives drawn with replacement (shapes8 has fewer annotations of some
    categories than asked) and an epoch longer than the pools both repeat windows."""
    from app.stats import epoch_draws
    state = ExplorerState(dataset='shapes8', backend=None, n_pos=40, n_neg=4, balance='inverse',
                          window_dims=(64, 64), epoch_length=70, seed=2)
    items = _items(state)
    assert len(items) == 70
    draws = epoch_draws(state.sampler, state.pools)
    windows = [(_window(s), s['target']['aid']) for _, s in items]
    pool_indices = [p for p, _ in items]
    assert draws['items'] == draws['counted'] == 70
    assert draws['repeats'] == 70 - len(set(windows))
    assert draws['repeats_epoch'] == 70 - len(set(pool_indices))
    assert draws['repeats_pool'] == len(set(pool_indices)) - len(set(windows))
    assert draws['repeats_epoch'] > 0 and draws['repeats_pool'] > 0   # both causes occur
    assert (draws['sides'], draws['scales'], draws['frames']) == (None, None, None)


def test_sides_and_scales_drawn_are_those_of_the_items():
    from app.stats import draws_columns, epoch_draws, stats_data
    state = ExplorerState(dataset='shapes8', backend=None, n_pos=12, n_neg=3, pad=(0, 0),
                          window_dims=(64, 64), window_size_range=[24, 40],
                          scale_range=[0.5, 1.0], epoch_length=30, seed=1)
    items = _items(state)
    sides, scales = [], []
    for _, sample in items:
        _, x0, y0, x1, y1 = _window(sample)
        assert x1 - x0 == y1 - y0          # a square window of the drawn side
        side = x1 - x0
        sides.append(side)
        h = np.asarray(sample['im']).shape[0]
        scales.append(h / side)            # the sample is ceil(side * scale) high
    draws = epoch_draws(state.sampler, state.pools)
    assert draws['sides'].tolist() == sides
    for side, got, approx in zip(sides, draws['scales'].tolist(), scales):
        assert 0.5 <= got <= 1.0
        assert math.ceil(side * got - 1e-9) == round(approx * side)
    cols = draws_columns(draws, state.pools.config)
    by_side = collections.Counter(sides)
    assert {round(left + 0.5): int(c) for left, c in zip(cols['sides']['left'],
                                                         cols['sides']['items'])} == \
        {s: by_side.get(s, 0) for s in range(24, 41)}
    assert int(np.sum(cols['scales']['items'])) == 30 and len(cols['times']['items']) == 0
    data = stats_data(state.pools, state.shared.dset, state.sampler.regions,
                      sampler=state.sampler)
    assert 'items repeating a window' in data['html'] and 'window sides drawn' in data['html']
    assert f'{min(sides)}-{max(sides)} px' in data['html']


def test_time_offsets_drawn_are_the_frames_of_the_items():
    from app.stats import epoch_draws
    state = ExplorerState(dataset='vidshapes3-frames6', backend=None, n_pos=6, n_neg=2,
                          window_dims=(64, 64), time_steps=3, time_sampling='random',
                          time_span=5, seed=4)
    dset = state.shared.dset
    frames, offsets = [], []
    for pool_index, sample in _items(state):
        gid = int(state.pools.item(pool_index)['gid'])
        video = list(dset.index.vidid_to_gids[dset.imgs[gid]['video_id']])
        got = [g for g in sample['params']['frame_gids'] if g is not None]
        frames.append(len(got))
        offsets += [video.index(g) - video.index(gid) for g in got]
    draws = epoch_draws(state.sampler, state.pools)
    assert draws['frames'].tolist() == frames
    assert sorted(draws['offsets'].tolist()) == sorted(offsets)
    assert 0 in offsets and max(abs(o) for o in offsets) <= 4


def test_draw_plots_are_updated_in_place_and_shown_while_their_option_is_on():
    from app.layout import Explorer
    from tests.test_app_inplace import _render
    e = Explorer('shapes8', backend=None, n_pos=6, n_neg=2, window_dims=(64, 64))
    _render(e)
    plots = e._stats_plots
    figures = dict(plots.figures)
    assert not any(plots.panes[k].visible for k in ('sides', 'scales', 'times'))
    assert not set(figures) & {'sides', 'scales', 'times'}    # not made while not shown
    e.state.window_size_range = [32, 48]            # a 'read' field: the pools stay
    src = plots.sources['sides'].data
    assert plots.panes['sides'].visible and not plots.panes['scales'].visible
    assert int(np.sum(src['items'])) == e.state.pools.n_pos + e.state.pools.n_neg
    assert 'Window sides drawn' in plots.figures['sides'].title.text
    assert 'window sides drawn' in e.stats_numbers.object
    sides = plots.figures['sides']                    # made the first time it is shown
    assert plots.figures == {**figures, 'sides': sides}
    e.state.window_size_range = None
    assert not plots.panes['sides'].visible
    e.state.window_size_range = [32, 40]
    assert plots.panes['sides'].visible
    assert plots.figures == {**figures, 'sides': sides}   # the same figures all along


def test_gallery_labels_say_the_drawn_size_and_scale():
    from app.layout import Explorer
    e = Explorer('shapes8', backend=None, n_pos=4, n_neg=1, window_dims=(64, 64), pad=(0, 0),
                 window_size_range=[24, 40], scale_range=[0.5, 1.0])
    e._update_galleries()
    title = e._gallery_titles['pos'].object
    assert 'load_item(i, epoch=0)' in title and 'window side drawn in 24-40 px' in title
    assert 'scale drawn in 0.5-1.0' in title
    labels = [it['label'] for it in e.gallery_tiles['pos'].items]
    assert len(labels) == 4
    for k, label in enumerate(labels):
        sample = e.state.sampler.load_item(k)
        _, x0, _, x1, _ = _window(sample)
        h = np.asarray(sample['im']).shape[0]
        side = x1 - x0
        assert f'{side}x{side} px ×' in label, label
        scale = float(label.split('×')[1].split()[0])
        assert abs(scale * side - h) < 1.0 + side * 0.0005   # 3 digits of the scale
    e.state.param.update(window_size_range=None, scale_range=None)
    e._update_galleries()
    assert 'px' not in e.gallery_tiles['pos'].items[0]['label']
    assert 'returns them' in e._gallery_titles['pos'].object


def test_overview_marks_the_dropped_windows_dashed():
    """Windows of 800 px over the 600 px shapes8 images always hold more than 30 %
    padding: every positive is dropped, where the same draw without the limit puts it."""
    from app import views
    from app.layout import Explorer
    from tests.test_app_inplace import _render
    kw = {'backend': None, 'n_pos': 6, 'n_neg': 0, 'window_dims': (800, 800), 'seed': 5}
    plain = ExplorerState(dataset='shapes8', **kw)
    e = Explorer('shapes8', max_nodata_fraction=0.3, **kw)
    _render(e)
    s = e.state
    assert s.pools.n_pos == 0 and s.pools.nodata_dropped['total'] == 6
    (source,) = list(e._window_sources)
    dropped = e._dropped_sources()[source]
    for gid in sorted(set(plain.pools.pos['gid'].tolist())):
        s.gid = gid
        want = set()
        for i in range(plain.pools.n_pos):
            sample = plain.sampler.load_item(i)
            if sample['target']['gid'] == gid:
                want.add(_window(sample)[1:])
        d = dropped.data
        assert set(zip(d['x0'], d['y0'], d['x1'], d['y1'])) == want
        assert set(d['kind']) == {'dropped pos'} and set(d['color']) == {views.POS_COLOR}
    glyphs = [r.glyph for r in _render_figure(e, dropped).renderers
              if getattr(r, 'data_source', None) is dropped]
    assert [g.line_dash for g in glyphs] == ['dashed']
    s.max_nodata_fraction = None
    assert dropped.data['x0'] == []


def _render_figure(explorer, source):
    from bokeh.models import Plot
    doc = source.document
    (fig,) = [m for m in doc.models if isinstance(m, Plot)
              and any(getattr(r, 'data_source', None) is source for r in m.renderers)]
    return fig


@pytest.mark.parametrize('field', ['epoch_length', 'scale_range', 'window_size_range',
                                   'output_dims', 'max_nodata_fraction', 'time_steps',
                                   'time_sampling', 'time_span', 'resolution', 'balance'])
def test_every_training_option_has_a_widget_with_its_tooltip(explorer_factory, field):
    e = explorer_factory()
    widgets = {'max_nodata_fraction': e.max_nodata, 'time_steps': e.time_steps,
               'time_sampling': e.time_sampling, 'time_span': e.time_span,
               'resolution': e.resolution}
    widget = widgets.get(field) or e.more._widgets[field]
    doc = e.state.param[field].doc
    assert widget.description and widget.description.strip() == doc.strip()
    if field == 'balance':
        assert 'Grid mode' in widget.description


@pytest.fixture(scope='module')
def explorer_factory():
    from app.layout import Explorer
    made = []

    def make():
        if not made:
            made.append(Explorer('shapes8', backend=None, n_pos=4))
        return made[0]
    return make
