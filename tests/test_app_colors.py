"""One colour per category in every view, the sidebar's label list and its show / hide
toggles (server side; the browser test is in tests/test_app_legend_browser.py)."""
from __future__ import annotations

import colorcet
import holoviews as hv
import kwcoco
import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import GlyphRenderer
from hypothesis import given, settings
from hypothesis import strategies as st

from app import views
from app.colors import HALO, category_colors


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


def _dataset(cids) -> kwcoco.CocoDataset:
    dset = kwcoco.CocoDataset()
    for cid in cids:
        dset.add_category(f'c{cid}', id=int(cid))
    return dset


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 10_000), min_size=2, max_size=300), st.randoms())
def test_colors_are_stable_and_neighbours_differ(cids, rnd):
    order = sorted(cids)
    shuffled = list(cids)
    rnd.shuffle(shuffled)
    colors = category_colors(_dataset(order))
    # the same categories added in any order: the same colours (stable per id)
    assert category_colors(_dataset(shuffled)) == colors
    # the k-th id gets colorcet's glasbey_hv colour k (an independent lookup)
    palette = colorcet.palette['glasbey_hv']
    assert [colors[c] for c in order] == [palette[k % 256] for k in range(len(order))]
    # neighbouring ids are clearly different colours; up to 256 ids all colours differ
    for a, b in zip(order, order[1:]):
        assert np.linalg.norm(_rgb(colors[a]) - _rgb(colors[b])) > 40, (a, b)
    assert len(set(colors.values())) == min(len(order), 256)


def test_colors_follow_a_changed_category_list():
    dset = _dataset([1, 2])
    first = category_colors(dset)
    dset.add_category('c0', id=0)
    again = category_colors(dset)
    assert again[0] == first[1] and again[1] == first[2] and len(again) == 3


@pytest.fixture
def explorer():
    from app.layout import Explorer
    ex = Explorer('shapes8', backend=None, n_pos=6, neg_to_pos_ratio=1.0,
                  window_dims=(96, 128))
    # an image with annotations of at least two categories
    dset = ex.state.shared.dset
    ex.state.gid = max(dset.imgs, key=lambda g: len({dset.anns[a]['category_id']
                                                    for a in dset.index.gid_to_aids[g]}))
    return ex


def _overview_plot(ex):
    """The overview as a live Bokeh plot (what the browser gets; it follows the state)."""
    return hv.renderer('bokeh').get_plot(ex.overview[0].object)


def _overview_sources(plot) -> list:
    """``(renderer, data)`` of the overview's annotation glyphs."""
    out = []
    for r in plot.state.renderers:
        data = getattr(r.data_source, 'data', {})
        if 'aid' in data and 'category' in data and 'halo' not in (r.tags or []):
            out.append((r, data))
    return out


def _legend_colors(ex) -> dict:
    """{category name: colour} as the sidebar's label list shows it (swatch HTML)."""
    out = {}
    for row in ex.legend_rows:
        swatch, box = row[0], row[1]
        out[box.label] = swatch.object.split('data-color="')[1][:7]
    return out


def test_every_view_draws_a_category_in_the_legend_colour(explorer):
    ex, s = explorer, explorer.state
    dset = s.shared.dset
    legend = _legend_colors(ex)
    assert legend == {dset.cats[cid]['name']: color
                      for cid, color in category_colors(dset).items()}
    # overview: every annotation glyph (boxes, polygons, keypoints) in its category colour
    plot = _overview_plot(ex)
    seen = set()
    for renderer, data in _overview_sources(plot):
        for aid, cat, color in zip(data['aid'], data['category'], data['color']):
            assert dset.cats[dset.anns[int(aid)]['category_id']]['name'] == cat
            assert color == legend[cat], (aid, cat)
            seen.add(int(aid))
    assert seen == set(dset.index.gid_to_aids[s.gid])
    # ... each outline over a dark halo: a renderer of the same source, below it
    halos = [r for r in plot.state.renderers if 'halo' in (r.tags or [])]
    assert halos and all(r.glyph.line_color == HALO for r in halos)
    # detail pane
    aid = next(iter(dset.index.gid_to_aids[s.gid]))
    x, y, w, h = dset.anns[aid]['bbox']
    s.click_xy = (x + w / 2, y + h / 2)
    boxes = ex.detail[0][0].object.get(1)
    assert len(boxes)
    for cat, color in zip(boxes.dimension_values('category'), boxes.dimension_values('color')):
        assert color == legend[cat]
    # statistics: the class balance bars
    bal = views.class_balance(s.pools, dset)
    for cat, color in zip(bal['category'], bal['color']):
        assert color == legend.get(cat, views.OTHER_COLOR)
    from app.stats import StatsPlots, stats_data
    plots = StatsPlots()
    plots.show(stats_data(s.pools, dset, s.sampler.regions))
    bars = plots.sources['balance'].data
    assert bars['category'] and \
        [legend.get(c, views.OTHER_COLOR) for c in bars['category']] == list(bars['color'])


def test_gallery_thumbnail_outlines_are_the_category_colour():
    """A sample drawn for the gallery: the box outline is the category's colour, its halo
    the halo colour (pixels compared, no resizing: thumb = window size)."""
    import kwimage
    dset = _dataset([4, 9])
    colors = category_colors(dset)
    dets = kwimage.Detections(boxes=kwimage.Boxes(np.array([[20, 20, 60, 50]]), 'ltrb'),
                              class_idxs=np.array([0]), cids=np.array([9]),
                              segmentations=kwimage.SegmentationList([None]),
                              keypoints=kwimage.PointsList([None]), datakeys=['cids'])
    sample = {'im': np.full((100, 100, 3), 128, np.uint8),
              'annots': {'frame_dets': [dets]}}
    pic = views.draw_sample(sample, views.POS_COLOR, thumb=100, colors=colors)
    assert tuple(pic[35, 20]) == tuple(_rgb(colors[9]).astype(int))     # left edge
    assert tuple(pic[35, 19]) == tuple(pic[35, 21]) == (0, 0, 0)         # halo each side
    assert tuple(pic[35, 16]) == tuple(pic[35, 25]) == (128, 128, 128)   # image
    hidden = views.draw_sample(sample, views.POS_COLOR, thumb=100, colors=colors,
                               hidden={9})
    assert tuple(hidden[35, 20]) == (128, 128, 128)


def test_legend_counts_are_the_dataset_filter_and_pool_counts(explorer):
    ex, s = explorer, explorer.state
    dset = s.shared.dset
    name = s.category_names[1]
    cid = dset.name_to_cat[name]['id']
    s.search = str(s.gid)
    text = ex._legend[name][1].object
    total = sum(1 for a in dset.anns.values() if a['category_id'] == cid)
    listed = sum(1 for a in dset.anns.values()
                 if a['category_id'] == cid and a['image_id'] == s.gid)
    pos = int((s.pools.pos['category_id'] == cid).sum())
    assert f'>{total} · {listed} · {pos}<' in text


def test_legend_toggle_hides_exactly_that_category_everywhere(explorer):
    ex, s = explorer, explorer.state
    dset = s.shared.dset
    aids = set(dset.index.gid_to_aids[s.gid])
    cats = sorted({dset.anns[a]['category_id'] for a in aids})
    hide = cats[0]
    name = dset.cats[hide]['name']
    pools, revision, config = s.pools, s.revision, s.export_yaml()
    gallery_before = ex._gallery_items()
    plot = _overview_plot(ex)
    ex._legend[name][0].value = False          # the user unticks the category
    assert s.hidden_categories == [name]
    expect = {a for a in aids if dset.anns[a]['category_id'] != hide}
    drawn = set()
    for _, data in _overview_sources(plot):
        drawn |= {int(a) for a in data['aid']}
    assert drawn == expect
    # a view setting: same pools, revision and exported config
    assert s.pools is pools and s.revision == revision and s.export_yaml() == config
    # detail pane: no annotation of that category
    aid = next(a for a in aids if dset.anns[a]['category_id'] == hide)
    x, y, w, h = dset.anns[aid]['bbox']
    s.click_xy = (x + w / 2, y + h / 2)
    overlay = ex.detail[0][0].object
    assert name not in set(overlay.get(1).dimension_values('category'))
    # galleries: drawn again without it
    assert ex._gallery_items() is not gallery_before
    # shown again: back in the overview, and the checkbox follows the state
    s.hidden_categories = []
    assert ex._legend[name][0].value is True
    drawn = set()
    for _, data in _overview_sources(plot):
        drawn |= {int(a) for a in data['aid']}
    assert drawn == aids


def test_label_counts_match_an_independent_count():
    dset = kwcoco.CocoDataset.demo('shapes32')
    gids = sorted(dset.imgs)[::3]
    table = views.label_counts(dset, gids)
    for row in table.itertuples(index=False):
        anns = [a for a in dset.anns.values() if a['category_id'] == row.cid]
        assert row.annotations == len(anns)
        assert row.in_filter == sum(a['image_id'] in set(gids) for a in anns)
        assert row.positives == 0


def test_the_explorer_renders_with_the_label_list(explorer):
    import panel as pn
    assert pn.panel(explorer).get_root(Document()) is not None


# ---------------------------------------------------------------- many boxes: rasterised
def _boxes_dataset(tmp_path, n_side=6, cell=100, side=None):
    """One grey image with an ``n_side`` x ``n_side`` grid of 40x30 boxes (one per cell of
    ``cell`` pixels), categories alternating 1, 2, 3."""
    import cv2
    side = side or n_side * cell
    cv2.imwrite(str(tmp_path / 'img.png'), np.full((side, side, 3), 128, np.uint8))
    dset = kwcoco.CocoDataset()
    for cid in (1, 2, 3):
        dset.add_category(f'c{cid}', id=cid)
    gid = dset.add_image(file_name='img.png', width=side, height=side)
    for k in range(n_side * n_side):
        row, col = divmod(k, n_side)
        dset.add_annotation(image_id=gid, category_id=1 + k % 3,
                            bbox=[col * cell + 10, row * cell + 20, 40, 30])
    path = tmp_path / 'boxes.kwcoco.json'
    dset.fpath = str(path)
    dset.dump(str(path))
    return path


def test_overview_annotations_are_glyphs_up_to_the_limit_then_burned(tmp_path):
    dset = kwcoco.CocoDataset(str(_boxes_dataset(tmp_path)))
    aids, ltrb, cids = views.image_boxes(dset, 1)
    assert len(aids) == 36 and ltrb[7].tolist() == [110, 120, 150, 150]
    # few boxes: all drawn as glyphs, whatever the view
    glyphs, burned = views.overview_annotations(dset, 1, (0, 10), (0, 10), limit=36)
    assert glyphs is None and len(burned) == 0
    # more than the limit in view: every box in view burned, none as a glyph
    glyphs, burned = views.overview_annotations(dset, 1, limit=10)
    assert glyphs == [] and sorted(burned.tolist()) == list(range(36))
    # zoomed in on the 2 x 2 cells at the top left: their 4 boxes are glyphs
    glyphs, burned = views.overview_annotations(dset, 1, (0, 199), (0, 199), limit=10)
    assert sorted(glyphs) == sorted(aids[[0, 1, 6, 7]].tolist()) and len(burned) == 0
    # hidden categories are neither
    glyphs, _ = views.overview_annotations(dset, 1, (0, 199), (0, 199), hidden={1}, limit=10)
    assert sorted(glyphs) == sorted(a for a in aids[[0, 1, 6, 7]].tolist()
                                    if dset.anns[a]['category_id'] != 1)


def test_burn_boxes_draws_outlines_over_a_halo_at_the_image_scale():
    rgb = np.full((100, 100, 3), 128, np.uint8)
    # the image covers x, y in [0, 200): 2 image pixels a picture pixel
    views.burn_boxes(rgb, (0, 0, 200, 200), np.array([[20.0, 40.0, 100.0, 120.0]]),
                     ['#fb4f2f'])
    color = (0xfb, 0x4f, 0x2f)
    # the box is (10, 20) - (50, 60) in picture pixels
    assert tuple(rgb[20, 30]) == tuple(rgb[60, 30]) == tuple(rgb[40, 10]) == color
    assert tuple(rgb[19, 30]) == tuple(rgb[21, 30]) == (0, 0, 0)        # halo
    assert tuple(rgb[40, 30]) == tuple(rgb[17, 30]) == (128, 128, 128)  # inside, outside


def test_explorer_overview_burns_many_boxes_and_draws_few_as_glyphs(tmp_path, monkeypatch):
    from app.layout import Explorer
    monkeypatch.setattr(views, 'VECTOR_LIMIT', 10)
    path = _boxes_dataset(tmp_path)
    ex = Explorer(str(path), roots=[str(tmp_path)], backend=None, n_pos=2)
    plot = _overview_plot(ex)
    assert sum(len(d['aid']) for _, d in _overview_sources(plot)) == 0
    img = next(r for r in plot.state.renderers
               if type(r.glyph).__name__ == 'ImageRGBA').data_source.data['image'][0]
    rgba = img.view(np.uint8).reshape(img.shape + (4,))      # rows: y down, as the image
    colors = category_colors(ex.state.shared.dset)
    # the first box (category 1) is (10, 20) - (50, 50): its top edge at full resolution
    assert tuple(rgba[20, 30, :3]) == tuple(_rgb(colors[1]).astype(int))
    # zoomed in: the boxes in view become glyphs (hover), and leave the image
    for stream in plot.streams:
        if isinstance(stream, hv.streams.RangeXY):
            stream.update(x_range=(0, 199), y_range=(0, 199))
    hv.streams.Stream.trigger([s for s in plot.streams if isinstance(s, hv.streams.RangeXY)])
    drawn = set()
    for _, data in _overview_sources(plot):
        drawn |= {int(a) for a in data['aid']}
    aids, _, _ = views.image_boxes(ex.state.shared.dset, 1)
    assert drawn == set(aids[[0, 1, 6, 7]].tolist())


def test_overview_colours_follow_another_dataset(tmp_path):
    """Tour finding: after opening another dataset the overview drew its annotations in
    white (the colours of the previous dataset's ids) until the image changed."""
    import json

    from app.layout import Explorer
    path = _boxes_dataset(tmp_path, n_side=2)
    data = json.loads(path.read_text())
    for cat in data['categories']:           # other category ids than the first dataset's
        cat['id'] += 100
    for ann in data['annotations']:
        ann['category_id'] += 100
    other = tmp_path / 'other.kwcoco.json'
    other.write_text(json.dumps(data))
    ex = Explorer(str(path), roots=[str(tmp_path)], backend=None, n_pos=2)
    ex.overview.get_root(Document())     # shown: the new plot is drawn as the dataset opens
    ex.state.dataset = str(other)
    assert ex.state.message is None or ex.state.message['level'] != 'error', ex.state.message
    dset = ex.state.shared.dset
    colors = category_colors(dset)
    figure = next(iter(ex.overview[0]._models.values()))[0]
    seen = 0
    for r in figure.select({'type': GlyphRenderer}):
        data = r.data_source.data
        if 'category' not in data or 'halo' in (r.tags or []):
            continue
        for aid, color in zip(data['aid'], data['color']):
            assert color == colors[dset.anns[int(aid)]['category_id']]
            seen += 1
    assert seen == 4


def test_legend_shows_a_category_name_as_text_only(tmp_path):
    """A category name is a checkbox label (Bokeh sets it as textContent); no HTML pane of
    the label list holds it."""
    import json

    from app.layout import Explorer
    evil = '<img src=x onerror="alert(1)">'
    path = _boxes_dataset(tmp_path, n_side=2)
    data = json.loads(path.read_text())
    data['categories'][0]['name'] = evil
    path.write_text(json.dumps(data))
    ex = Explorer(str(path), roots=[str(tmp_path)], backend=None, n_pos=2)
    assert evil in ex._legend
    box, counts = ex._legend[evil]
    assert box.label == evil
    for row in ex.legend_rows:
        assert evil not in row[0].object and evil not in row[2].object
