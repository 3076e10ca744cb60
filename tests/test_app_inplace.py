"""Views updated in place (their Bokeh sources get new data, no new models) show exactly
what the pools hold: the statistics plots and the overview's pool windows; a change that
keeps the pools recomputes nothing."""
from __future__ import annotations

import base64
import collections

import numpy as np
import pytest

from app.stats import COVERAGE_LIMIT
from sampler_core.config import SamplingConfig

#: the changes made in place before the plots are compared with a fresh explorer's
CHANGES = [{'window_dims': (64, 96)}, {'n_pos': 7}, {'pad': (8, 4)},
           {'neg_to_pos_ratio': 2.0}, {'visible_thresh': 0.3}, {'window_dims': (48, 48)}]


def _render(explorer):
    from bokeh.document import Document
    import panel as pn
    doc = Document()
    doc.add_root(pn.panel(explorer).get_root(doc))
    return doc


def _columns(explorer) -> dict:
    """Each statistics source's columns as plain lists."""
    return {name: {k: np.asarray(v).tolist() for k, v in src.data.items()}
            for name, src in explorer._stats_plots.sources.items()}


def _expected(state) -> dict:
    """What the plots must show, computed here from the pools and ``load_item``."""
    pools, dset = state.pools, state.shared.dset
    names = collections.Counter(dset.cats[c]['name'] for c in pools.pos['category_id'])
    balance = sorted(names.items()) + [('(negatives)', pools.n_neg)]
    # the histogram shows every visible fraction (the threshold is a line on it)
    visible = np.concatenate([state.sampler.load_item(i, visible_thresh=0.0)['annots']['visible']
                              for i in range(pools.n_pos + pools.n_neg)] + [np.empty(0)])
    counts, edges = np.histogram(visible, bins=20, range=(0.0, 1.0))
    asked = state.n_neg if state.n_neg is not None else int(state.neg_to_pos_ratio * pools.n_pos)
    return {'balance': balance, 'visible': (counts.tolist(), edges[:-1].tolist()),
            'negatives': [asked, pools.n_neg], 'n_visible': len(visible)}


def test_statistics_updated_in_place_show_the_pools():
    from app.layout import Explorer
    e = Explorer('shapes8', backend=None, n_pos=5)
    _render(e)
    plots = e._stats_plots
    figures = {k: id(f) for k, f in plots.figures.items()}
    sources = {k: id(s) for k, s in plots.sources.items()}
    for change in CHANGES:
        e.state.param.update(**change)
        cols = _columns(e)
        want = _expected(e.state)
        assert list(zip(cols['balance']['category'], cols['balance']['windows'])) == \
            want['balance'], change
        assert plots.figures['balance'].x_range.factors == cols['balance']['category']
        assert (cols["visible"]["annotations"], cols["visible"]["left"]) == want["visible"], change
        assert plots.figures['visible'].title.text == \
            f"Visible fraction of annotations (n={want['n_visible']})"
        assert cols['negatives']['windows'] == want['negatives']
        assert plots.span.location == e.state.visible_thresh
        covered = list(cols['coverage']['covered'])
        assert covered == sorted(covered, reverse=True) and all(0 <= c <= 1 for c in covered)
        # the images with windows, then images without (covered 0) up to one bar count per
        # dataset (BokehJS fails when an update shrinks a categorical bar plot)
        shown = [int(g) for g, c in zip(cols['coverage']['image'], covered) if c > 0]
        assert set(shown) == set(e.state.pools.all['gid'])
        assert len(covered) == min(COVERAGE_LIMIT, len(e.state.shared.dset.imgs))
        assert plots.figures['coverage'].x_range.factors == cols['coverage']['image']
        window = f'{e.state.window_dims[0]}x{e.state.window_dims[1]}'
        assert f'<td>{window}</td>' in e.stats_numbers.object
    # the same models all along: only their data changed
    assert {k: id(f) for k, f in plots.figures.items()} == figures
    assert {k: id(s) for k, s in plots.sources.items()} == sources
    # exactly what a fresh explorer of the final config shows
    final = {k: getattr(e.state, k) for change in CHANGES for k in change}
    fresh = Explorer('shapes8', backend=None, **final)
    _render(fresh)
    assert _columns(fresh) == _columns(e)
    assert fresh.stats_numbers.object == e.stats_numbers.object
    for name, fig in fresh._stats_plots.figures.items():
        assert fig.title.text == plots.figures[name].title.text
    assert fresh._stats_plots.span.location == plots.span.location


@pytest.mark.parametrize('change', [{'visible_thresh': 0.4}, {'pad_mode': 'edge'}],
                         ids=['visible_thresh', 'pad_mode'])
def test_a_read_change_recomputes_neither_pools_nor_statistics(monkeypatch, change):
    import app.state
    import app.stats
    from app.layout import Explorer
    assert SamplingConfig.change_role(set(change)) == 'read'
    calls = collections.Counter()

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(app.state, 'compute_pools', counting('pools', app.state.compute_pools))
    monkeypatch.setattr(app.stats, 'stats_data', counting('stats', app.stats.stats_data))
    e = Explorer('shapes8', backend=None, n_pos=4)
    _render(e)
    pools, html, before = e.state.pools, e.stats_numbers.object, _columns(e)
    calls.clear()
    revision = e.state.revision
    e.state.param.update(**change)
    assert e.state.revision == revision + 1          # the change was applied
    assert calls == {} and e.state.pools is pools
    assert _columns(e) == before and e.stats_numbers.object == html
    assert e._stats_plots.span.location == e.state.visible_thresh
    assert e._gallery_cache[0] == e._gallery_key()   # the galleries (read windows) redrawn
    e.state.window_dims = (40, 40)                   # a pool change recomputes both, once
    assert calls == {'pools': 1, 'stats': 1}


def _loaded_windows(state) -> set:
    """(x0, y0, x1, y1, index, kind) of every pool window of the shown image, from
    ``load_item`` (the window the training loop cuts; pad 0)."""
    out = set()
    n_pos = state.pools.n_pos
    for i in range(n_pos + state.pools.n_neg):
        item = state.sampler.load_item(i)
        if item['target']['gid'] == state.gid:
            x0, y0, x1, y1 = (int(v) for v in item['params']['sample_tlbr'].to_ltrb().data.ravel())
            out.add((x0, y0, x1, y1, i, 'pos' if i < n_pos else 'neg'))
    return out


def test_overview_windows_updated_in_place_are_the_pool_windows():
    from app import views
    from app.layout import Explorer
    e = Explorer('shapes8', backend=None, n_pos=12, gid=3)
    doc = _render(e)
    (source,) = list(e._window_sources)
    from bokeh.models import Plot
    (fig,) = [m for m in doc.models if isinstance(m, Plot)
              and any(getattr(r, 'data_source', None) is source for r in m.renderers)]
    assert fig.renderers[-1].data_source is source     # drawn over the annotations
    s = e.state

    def shown():
        d = source.data
        return {(int(a), int(b), int(c), int(f), int(i), k)
                for a, b, c, f, i, k in zip(d['x0'], d['y0'], d['x1'], d['y1'], d['index'],
                                            d['kind'])}

    for change in [{}, {'window_dims': (64, 96)}, {'gid': 4}, {'n_pos': 20, 'seed': 3},
                   {'gid': 1}]:
        s.param.update(**change)
        rows = shown()
        assert {r for r in rows if r[5] in ('pos', 'neg')} == _loaded_windows(s), change
        assert list(e._window_sources) == [source]          # the same source all along
    # a highlighted item and a click are drawn last, in their colours
    s.select_item(0)                       # shows the first positive's image
    assert _loaded_windows(s) and s.gid == int(s.pools.pos['gid'].iloc[0])
    s.click_xy = (100.0, 200.0)
    d = source.data
    h, w = s.window_dims
    assert d['kind'][-2:] == ['selected', 'click']
    assert d['color'][-2:] == [views.SELECT_COLOR, views.CLICK_COLOR]
    assert [d[k][-1] for k in ('x0', 'y0', 'x1', 'y1')] == [100 - w // 2, 200 - h // 2,
                                                           100 - w // 2 + w, 200 - h // 2 + h]
    s.click_xy = None
    assert 'click' not in source.data['kind']
    # what a fresh explorer of the same state draws
    fresh = Explorer('shapes8', backend=None, n_pos=20, seed=3, window_dims=(64, 96), gid=s.gid,
                     selected_item=0)
    _render(fresh)
    (other,) = list(fresh._window_sources)
    assert {k: list(v) for k, v in other.data.items()} == \
        {k: list(v) for k, v in source.data.items()}


def test_gallery_thumbnails_updated_in_place_are_the_load_item_windows():
    """After changes, each thumbnail (a JPEG) is its window as ``load_item`` returns it,
    drawn: close to that drawing (JPEG error, mean < 8 of 255) and far from any other
    window's (> 30)."""
    import io

    from PIL import Image

    from app import views
    from app.galleries import THUMB
    from app.layout import Explorer
    e = Explorer('shapes8', backend=None, n_pos=5, gallery_size=3)
    _render(e)
    s = e.state
    models = dict(e.gallery_tiles)
    colors = views.category_colors(s.shared.dset)
    for change in [{'window_dims': (64, 96)}, {'pad': (16, 0), 'seed': 2}, {'n_pos': 2}]:
        s.param.update(**change)
        shown = [(it['key'], base64.b64decode(it['src'].split(',', 1)[1]))
                 for kind in ('pos', 'neg') for it in e.gallery_tiles[kind].items]
        n = s.pools.n_pos + s.pools.n_neg
        assert [i for i, _ in shown] == list(range(min(3, s.pools.n_pos))) + \
            list(range(s.pools.n_pos, min(n, s.pools.n_pos + 3))), change
        drawn = {i: views.draw_sample(s.sampler.load_item(i), views.POS_COLOR if i <
                                      s.pools.n_pos else views.NEG_COLOR, THUMB, colors)
                 for i in range(n)}
        for index, pic in shown:
            thumb = np.asarray(Image.open(io.BytesIO(pic)).convert('RGB'), dtype=float)
            err = {i: np.abs(thumb - im).mean() for i, im in drawn.items()}
            assert err[index] < 8 and all(v > 30 for i, v in err.items() if i != index), \
                (change, index, err)
    # the same models all along (refilled, never rebuilt)
    assert all(e.gallery_tiles[kind] is models[kind] for kind in ('pos', 'neg'))
