"""View functions (state -> HoloViews elements / tables) and widget links, without a browser."""
import base64
import math
import os

import holoviews as hv
import numpy as np
import pytest

from app import views
from app.state import ExplorerState


@pytest.fixture
def state():
    return ExplorerState(dataset='shapes8', backend=None, n_pos=8, neg_to_pos_ratio=1.0,
                         window_dims=(96, 128))


@pytest.fixture(scope='module')
def large_state(tmp_path_factory):
    from app.demo import make_large_demo
    root = tmp_path_factory.mktemp('large')
    path = make_large_demo(n_images=1, width=5200, height=4100, n_annots=12, root=root)
    return ExplorerState(dataset=str(path), roots=[str(root)], backend='npy',
                         workdir=str(root / 'cache'), n_pos=4)


def test_overview_of_a_large_image_is_downsampled_and_refined(large_state, monkeypatch):
    sampler = large_state.sampler
    reads = []
    orig = sampler.frames.load_region

    def spy(gid, region=None, **kw):
        reads.append(region)
        return orig(gid, region, **kw)

    monkeypatch.setattr(sampler.frames, 'load_region', spy)
    rgb, bounds, step = views.image_region(sampler, 1, max_px=1000)
    assert max(rgb.shape[:2]) <= 1000 and step == 6
    assert bounds[0] == 0 and bounds[2] >= 5200 - step and bounds[3] >= 4100 - step
    assert reads[-1][0].step == 6 and reads[-1][1].step == 6   # strided read, never whole
    # zoomed in: the visible region only, at full resolution
    rgb2, bounds2, step2 = views.image_region(sampler, 1, (1000, 1400), (2000, 2300))
    assert step2 == 1 and rgb2.shape == (300, 400, 3) and bounds2 == (1000, 2000, 1400, 2300)
    full = sampler.frames.load_region(1, (slice(2000, 2300), slice(1000, 1400)))
    assert np.array_equal(rgb2, full[:, :, :3])
    el = views.overview_image(sampler, 1, (0, 2600), (0, 2050), max_px=500)
    assert isinstance(el, hv.RGB) and max(el.data.shape[:2]) <= 500
    # the element is in image coordinates, y down: pixel (row 0, col 0) sits at the top left
    assert el.bounds.lbrt()[0] == 0 and el.bounds.lbrt()[1] == 0


def test_rgb_element_puts_image_row_zero_at_y_zero():
    arr = np.zeros((4, 6, 3), np.uint8)
    arr[0, :, 0] = 255                  # first row red
    el = views.rgb_element(arr, (0, 0, 6, 4))
    r, c = el.sheet2matrixidx(3.0, 0.5)  # (x, y) = (3, 0.5): first image row
    assert el.data[r, c, 0] == 255
    r, c = el.sheet2matrixidx(3.0, 3.5)
    assert el.data[r, c, 0] == 0


def test_annotation_overlay_counts_and_hover_dims(state):
    dset = state.shared.dset
    gid = max(dset.imgs, key=lambda g: len(dset.index.gid_to_aids[g]))
    overlay = views.annotation_overlay(dset, gid)
    boxes, polys, points = overlay.values()
    aids = sorted(dset.index.gid_to_aids[gid])
    assert sorted(boxes.dimension_values('aid')) == aids
    assert [d.name for d in boxes.vdims] == ['aid', 'category', 'area', 'color']
    cats = {dset.anns[a]['category_id'] for a in aids}
    assert set(boxes.dimension_values('category')) == {dset.cats[c]['name'] for c in cats}
    assert len(polys.split()) >= 1
    n_kpts = sum(len(dset.anns[a].get('keypoints') or []) for a in aids)
    assert len(points) == n_kpts
    only_boxes = views.annotation_overlay(dset, gid, ['boxes'])
    assert len(only_boxes.get(1).split()) == 0 and len(only_boxes.get(2)) == 0


def test_window_columns_show_the_pools_of_the_image(state):
    pools = state.pools
    gid = int(pools.pos['gid'].iloc[0])
    cols = views.window_columns(pools, gid, selected=0, click_window=(1, 2, 30, 40))
    kinds = cols['kind']
    assert kinds.count('pos') == int((pools.pos['gid'] == gid).sum())
    assert kinds.count('neg') == int((pools.neg['gid'] == gid).sum())
    assert kinds[-2:] == ['selected', 'click']
    assert cols['index'][-2] == 0
    assert [cols[k][-1] for k in ('x0', 'y0', 'x1', 'y1')] == [1, 2, 30, 40]
    colors = dict(zip(kinds, cols['color']))
    assert colors['pos'] == views.POS_COLOR and colors['click'] == views.CLICK_COLOR
    x0, y0, x1, y1 = (cols[k][0] for k in ('x0', 'y0', 'x1', 'y1'))
    assert (x1 - x0, y1 - y0) == (128, 96)
    other = [g for g in state.image_ids() if g != gid][0]
    assert 'selected' not in views.window_columns(pools, other, selected=0)['kind']


def test_detail_sample_is_centred_on_the_click_with_clipped_annots(state):
    dset = state.shared.dset
    ann = next(a for a in dset.anns.values() if a['bbox'][2] > 40)
    x, y, w, h = ann['bbox']
    cx, cy = x + w, y + h               # a corner: the annotation is cut by the window
    state.pad = (5, 7)
    sample = views.detail_sample(state.sampler, state.to_config(), ann['image_id'], cx, cy)
    assert sample['im'].shape[:2] == (96 + 10, 128 + 14)
    x0, y0 = math.floor(cx - 64) - 7, math.floor(cy - 48) - 5
    assert sample['params']['offset'].tolist() == [-x0, -y0]
    assert sample['params']['tf_rel_to_abs'][:2, 2].tolist() == [x0, y0]
    clipped = sample['annots']['clipped_dets'][0]
    ltrb = clipped.boxes.to_ltrb().data
    assert (ltrb[:, 0::2] >= 0).all() and (ltrb[:, 0::2] <= 128 + 14).all()
    assert (ltrb[:, 1::2] >= 0).all() and (ltrb[:, 1::2] <= 96 + 10).all()
    assert ann['id'] in sample['annots']['aids'].tolist()
    table = views.params_table(sample)
    values = dict(zip(table['param'], table['value']))
    assert values['offset (dx, dy)'] == str((-x0, -y0))
    assert values['pad'] == str((5, 7))
    el = views.detail_view(sample, dset)
    assert isinstance(el, hv.Overlay) and isinstance(el.get(0), hv.RGB)
    assert views.click_window(state.to_config(), cx, cy) == (x0 + 7, y0 + 5, x0 + 7 + 128,
                                                              y0 + 5 + 96)


def test_gallery_matches_load_item(state):
    items = views.gallery(state.sampler, state.pools, 'pos', 3, thumb=64)
    assert [it['index'] for it in items] == [0, 1, 2]
    for it in items:
        sample = state.sampler.load_item(it['index'])
        assert it['gid'] == sample['target']['gid']
        assert it['n_annots'] == len(sample['annots']['aids'])
        assert it['image'].shape == (64, 64, 3) and it['error'] is None
    neg = views.gallery(state.sampler, state.pools, 'neg', 2, thumb=64)
    assert [it['index'] for it in neg] == [state.pools.n_pos, state.pools.n_pos + 1]
    assert all(it['aid'] == -1 for it in neg)


def test_gallery_reports_an_unreadable_image(tmp_path):
    import shutil

    import kwcoco
    src = kwcoco.CocoDataset.demo('shapes8')
    dset = src.copy()
    (tmp_path / 'images').mkdir()
    for img in dset.imgs.values():
        name = os.path.basename(img['file_name'])
        shutil.copy(src.get_image_fpath(img['id']), tmp_path / 'images' / name)
        img['file_name'] = 'images/' + name
    path = tmp_path / 'd.kwcoco.json'
    dset.fpath = str(path)
    dset.dump(str(path))
    state = ExplorerState(dataset=str(path), roots=[str(tmp_path)], backend=None, n_pos=8)
    gid = int(state.pools.pos['gid'].iloc[0])
    (tmp_path / dset.imgs[gid]['file_name']).write_bytes(b'not a png')
    items = views.gallery(state.sampler, state.pools, 'pos', 8, thumb=32)
    bad = [it for it in items if it['gid'] == gid]
    assert bad and all(it['error'] and it['image'] is None for it in bad)
    assert all(it['error'] is None for it in items if it['gid'] != gid)


def test_statistics(state):
    pools, dset = state.pools, state.shared.dset
    bal = views.class_balance(pools, dset)
    assert bal['windows'].sum() == pools.n_pos + pools.n_neg
    assert bal['category'].iloc[-1] == '(negatives)'
    fr = views.visible_fractions(state.sampler.regions, pools)
    expect = np.concatenate([state.sampler.load_item(i)['annots']['visible']
                             for i in range(pools.n_pos + pools.n_neg)])
    assert np.allclose(np.sort(fr), np.sort(expect))
    from app.stats import stats_data
    data = stats_data(pools, dset, state.sampler.regions)
    assert sum(data['visible']['annotations']) == len(fr)
    assert data['negatives']['windows'] == [pools.n_neg_asked, pools.n_neg]
    assert data['balance']['windows'] == bal['windows'].tolist()
    per_image, overall = views.coverage(pools, dset)
    assert 0 < overall < 1 and per_image['covered'].between(0, 1).all()
    assert 'positives' in views.summary(pools, overall) and '96x128' in views.summary(pools)


def test_statistics_change_with_the_window(state):
    _, small = views.coverage(state.pools, state.shared.dset)
    state.window_dims = (300, 300)
    _, big = views.coverage(state.pools, state.shared.dset)
    assert big > small


def test_coverage_of_one_full_image_window():
    state = ExplorerState(dataset='shapes8', backend=None, n_pos=1, n_neg=0,
                          window_dims=(600, 600))
    row = state.pools.pos.iloc[0]
    state.pools.pos.loc[:, ['x0', 'y0', 'x1', 'y1']] = [0, 0, 600, 600]
    per_image, overall = views.coverage(state.pools, state.shared.dset)
    assert per_image['covered'].tolist() == [1.0] and overall == pytest.approx(1 / 8)
    assert row['gid'] == per_image['gid'].iloc[0]


def test_negatives_asked_vs_found_when_the_images_are_full():
    import kwcoco
    dset = kwcoco.CocoDataset()
    dset.add_category('thing')
    for k in range(3):   # every pixel is inside an annotation: no negative can exist
        gid = dset.add_image(file_name=f'none_{k}.png', width=100, height=80)
        dset.add_annotation(image_id=gid, category_id=1, bbox=[0, 0, 100, 80])
    state = ExplorerState(dataset=dset, backend=None, n_pos=2, n_neg=5, window_dims=(20, 20))
    assert state.pools.n_neg_asked == 5 and state.pools.n_neg == 0
    from app.stats import stats_data
    data = stats_data(state.pools, state.shared.dset, state.sampler.regions)
    assert data['negatives']['windows'] == [5, 0]
    assert any('negative' in w for w in state.pools.warnings)


# ---------------------------------------------------------------- layout (no browser)
@pytest.fixture
def explorer():
    from app.layout import Explorer
    return Explorer('shapes8', backend=None, n_pos=4)


def test_widgets_are_views_of_the_state(explorer):
    s = explorer.state
    explorer.window_h.value = 72
    assert s.window_dims == (72, 128)
    s.window_dims = (40, 50)
    assert (explorer.window_h.value, explorer.window_w.value) == (40, 50)
    explorer.window_mode.value = 'box size'
    assert s.window_dims is None and explorer.window_h.disabled
    explorer.window_mode.value = 'square box'
    assert s.window_dims == 'square' and explorer.window_h.disabled
    assert 'window square box' in views.summary(s.pools)
    s.window_dims = None
    assert explorer.window_mode.value == 'box size'
    s.window_dims = (64, 64)
    assert explorer.window_mode.value == 'fixed' and not explorer.window_h.disabled
    explorer.pad_w.value = 6
    assert s.pad == (0, 6)
    explorer.channels.value = 'r'
    assert s.channels == 'r'
    explorer.channels.value = '<all>'
    assert s.channels is None
    explorer.categories.value = ['star']
    assert s.categories == ['star']
    s.seed = 5
    assert explorer.seed.value == 5
    explorer.n_pos.value = 3
    assert s.pools.n_pos == 3
    import param
    with param.edit_constant(explorer.neg_ratio):
        explorer.neg_ratio.value_throttled = 2.0
    assert s.neg_to_pos_ratio == 2.0 and s.pools.n_neg == 6


def test_overview_plot_is_reused_for_images_of_the_same_size(explorer):
    pane = explorer.overview.objects[0]
    explorer.state.step_image(1)
    assert explorer.overview.objects[0] is pane
    assert explorer._ov_stream.gid == explorer.state.gid and explorer._ov_reset
    explorer.state.dataset = 'large2'        # other image sizes: a new plot
    assert explorer.overview.objects[0] is not pane
    assert explorer._ov_dims == (4000, 5000)


def test_import_restores_every_widget(explorer):
    from sampler_core import SamplingConfig
    cfg = SamplingConfig(dataset='shapes32', backend=None, window_dims=(40, 56), pad=(4, 6),
                         pad_mode='reflect', visible_thresh=0.25, with_annots=['boxes'],
                         categories=['eff'], n_pos=3, n_neg=2, neg_overlap=0.1, seed=11,
                         neg_to_pos_ratio=0.5)
    explorer.config_upload.value = {'config.yaml': cfg.dumps().encode()}
    e = explorer
    assert e.demo_select.value == 'shapes32'
    assert (e.window_h.value, e.window_w.value, e.pad_h.value, e.pad_w.value) == (40, 56, 4, 6)
    assert e.pad_mode.value == 'reflect' and e.visible_thresh.value == 0.25
    assert e.with_annots.value == ['boxes'] and e.categories.value == ['eff']
    assert (e.n_pos.value, e.n_neg.value, e.seed.value) == (3, 2, 11)
    assert e.neg_overlap.value == 0.1 and e.neg_ratio.value == 0.5
    assert len(e.state.shared.dset.imgs) == 32


def test_export_download_is_a_sampling_config(explorer):
    from sampler_core import SamplingConfig
    explorer.state.window_dims = (50, 60)
    text = explorer._export().read()
    cfg = SamplingConfig.loads(text)
    assert cfg.window_dims == (50, 60) and cfg.dataset == 'shapes8'
    assert "CocoSampler.from_config('config.yaml')" in explorer.snippet.object


def test_messages_show_in_the_alert(explorer):
    explorer.path_input.value = '/etc/passwd'
    explorer._on_open()
    assert explorer.alert.visible and explorer.alert.object.startswith('refused')
    assert explorer.state.dataset == 'shapes8'


def test_layout_renders_offline(explorer):
    from bokeh.document import Document
    import panel as pn
    explorer.state.click_xy = (300.0, 300.0)
    root = pn.panel(explorer).get_root(Document())
    assert root is not None
    detail = explorer._detail((300.0, 300.0), explorer.state.revision)
    plot, table = detail.objects
    assert isinstance(plot.object, hv.Overlay)
    assert 'offset (dx, dy)' in table.object['param'].tolist()
    explorer.state.gallery_size = 2
    assert explorer.gallery_indices('pos') == [0, 1]
    srcs = [it['src'] for it in explorer.gallery_tiles['pos'].items]
    assert all(base64.b64decode(src.split(',', 1)[1])[:3] == b'\xff\xd8\xff'
               for src in srcs)   # JPEG
    neg = explorer.gallery_indices('neg')
    assert neg == [explorer.state.pools.n_pos, explorer.state.pools.n_pos + 1]
    explorer.gallery_tiles['pos'].clicked = [1, 1]   # clicking a thumbnail selects its window
    assert explorer.state.selected_item == 1
    assert '★' in explorer.gallery_tiles['pos'].items[1]['label']
    explorer.state.window_dims = (200, 64)
    assert '200x64' in explorer.stats_numbers.object


# ---------------------------------------------------------------- video and scale
def test_video_time_slider_walks_the_frames():
    import param

    from app.layout import Explorer
    e = Explorer('vidshapes3-frames6', backend=None, n_pos=4)
    dset = e.state.shared.dset
    frames = views.video_frames(dset, e.state.gid)
    assert len(frames) == 6 and e.frame_slider.visible and e.frame_slider.end == 5
    assert [dset.imgs[g]['frame_index'] for g in frames] == list(range(6))
    with param.edit_constant(e.frame_slider):
        e.frame_slider.value_throttled = 3
    assert e.state.gid == frames[3]
    e.state.gid = frames[5]
    assert e.frame_slider.value == 5
    still = Explorer('shapes8', backend=None, n_pos=2)
    assert not still.frame_slider.visible


def test_detail_clip_of_a_video_frame():
    state = ExplorerState(dataset='vidshapes3-frames6', backend=None, n_pos=4,
                          window_dims=(64, 80))
    dset = state.shared.dset
    frames = views.video_frames(dset, state.gid)
    gid = frames[4]
    sample = views.detail_sample(state.sampler, state.to_config(), gid, 150, 200, n_frames=3)
    assert sample['im'].shape[:3] == (3, 64, 80)        # moved back to fit the video
    assert list(sample['params']['frame_gids']) == frames[3:6]
    sample = views.detail_sample(state.sampler, state.to_config(), frames[1], 150, 200,
                                 n_frames=3)
    assert sample['im'].shape[:3] == (3, 64, 80)
    el = views.detail_view(sample, dset, gap=4)
    assert el.get(0).data.shape[:2] == (64, 3 * 80 + 2 * 4)
    n = sum(len(d) for d in sample['annots']['clipped_dets'])
    assert len(el.get(1)) == n
    table = dict(zip(*views.params_table(sample).to_dict('list').values()))
    assert table['gid'].startswith('video')


def test_scale_is_tuned_live():
    from app.layout import Explorer
    e = Explorer('shapes8', backend=None, n_pos=2, window_dims=(64, 64))
    e.scale.value = '0.5'
    assert e.state.scale == 0.5
    sample = views.detail_sample(e.state.sampler, e.state.to_config(), e.state.gid, 100, 100)
    assert sample['im'].shape[:2] == (32, 32)
    assert e.state.sampler.load_item(0)['im'].shape[:2] == (32, 32)
    e.scale.value = '0.5, 0.25'
    assert e.state.scale == [0.5, 0.25]
    e.scale.value = 'big'
    assert e.state.scale == [0.5, 0.25] and 'scale' in e.state.message['text']
    for bad in ('inf', '0.5, -1', '1, 2, 3'):   # the config's own check refuses them
        serial = e.state.message['serial']
        e.scale.value = bad
        msg = e.state.message
        assert e.state.scale == [0.5, 0.25] and msg['serial'] > serial and 'scale' in msg['text']
    e.scale.value = ''
    assert e.state.scale is None


def test_upload_a_dataset_and_export_names_its_real_path(tmp_path):
    import hashlib

    import kwcoco

    from app.layout import Explorer
    from app.uploads import UploadStore
    from sampler_core import SamplingConfig
    explorer = Explorer('shapes8', backend=None, n_pos=4, uploads=UploadStore(tmp_path / 'up'))
    dset = kwcoco.CocoDataset.demo('shapes8')   # absolute image paths in the demo folder
    data = dset.dumps().encode()
    explorer.upload.value = {'mine.kwcoco.json': data}
    state = explorer.state
    assert state.message is None, state.message
    digest = hashlib.sha256(data).hexdigest()
    assert state.dataset == str(tmp_path / 'up' / digest / 'mine.kwcoco.json')
    assert len(state.shared.dset.imgs) == 8
    cfg = SamplingConfig.loads(state.export_yaml())
    assert cfg.dataset == os.path.realpath(state.dataset)
    # a file that is not .json is refused before it is written
    explorer.upload.value = {'evil.sh': b'rm -rf /'}
    assert state.message['text'].startswith('refused')
    assert sorted(os.listdir(tmp_path / 'up')) == [digest]


def test_explorer_of_a_dataset_without_annotations_shows_images_and_negatives():
    import kwcoco
    from bokeh.document import Document
    import panel as pn
    from app.layout import Explorer
    dset = kwcoco.CocoDataset.demo('shapes8').copy()
    dset.remove_annotations(list(dset.anns))
    e = Explorer(dataset=dset, backend=None, n_pos=3, window_dims=(64, 64))
    assert pn.panel(e).get_root(Document()) is not None
    s = e.state
    assert (s.pools.n_pos, s.pools.n_neg) == (0, 3)
    assert e.gallery_indices('neg') == [0, 1, 2]
    assert e.gallery_indices('pos') == []
    assert 'none' in e._gallery_titles['pos'].object
    assert '>negatives found</td>\n      <td>3<' in e.stats_numbers.object
    rgb = views.overview_image(s.sampler, s.gid)
    assert rgb.data.shape[2] == 3 and rgb.data.max() > 0        # the image is there
    assert len(views.annotation_overlay(s.shared.dset, s.gid).get(0)) == 0
    assert views.class_balance(s.pools, s.shared.dset)['windows'].tolist() == [3]


def _odd_shapes8(bad_bbox=True):
    """shapes8 with odd entries: keypoints of length 4, a 3-number bbox, a polygon with a
    NaN coordinate (the first three annotations of image 3) and an image of width 0 (image 2)."""
    import kwcoco
    dset = kwcoco.CocoDataset.demo('shapes8').copy()
    a1, a2, a3, a4 = sorted(dset.index.gid_to_aids[3])[:4]
    for aid in dset.index.gid_to_aids[3]:
        dset.anns[aid]['keypoints'] = []
    dset.anns[a1]['keypoints'] = [10, 20, 2, 30]
    dset.anns[a4]['keypoints'] = [5, 6, 2, 7, 8, 0, 9, 10, 1]      # COCO triples
    if bad_bbox:        # (the library refuses such a dataset, naming the annotation)
        dset.anns[a2]['bbox'] = [5, 5, 10]
    dset.anns[a3]['segmentation'] = [[1.0, 1.0, float('nan'), 5.0, 9.0, 9.0]]
    dset.imgs[2]['width'] = 0
    return dset, (a1, a2, a3)


def test_annotation_overlay_leaves_out_odd_geometry_with_a_warning():
    dset, (a1, a2, a3) = _odd_shapes8()
    with pytest.warns(UserWarning) as rec:
        overlay = views.annotation_overlay(dset, 3)
    text = str(rec[0].message)
    assert f'keypoints of annotation(s) [{a1}]' in text and f'boxes of annotation(s) [{a2}]' \
        in text and f'segmentation of annotation(s) [{a3}]' in text
    aids = list(dset.index.gid_to_aids[3])
    rects, polys, points = overlay.get(0), overlay.get(1), overlay.get(2)
    assert sorted(rects.dimension_values('aid', expanded=False)) == sorted(set(aids) - {a2})
    assert a3 not in set(polys.dimension_values('aid'))
    # the good keypoints are all there: the visible triples of the fourth annotation
    got = list(zip(points.dimension_values('x'), points.dimension_values('y')))
    assert sorted(got) == [(5, 6), (9, 10)]


def test_explorer_survives_odd_annotations_and_an_image_without_size():
    import warnings

    from bokeh.document import Document
    import panel as pn
    from app.layout import Explorer
    dset, (a1, _, _) = _odd_shapes8(bad_bbox=False)
    e = Explorer(dataset=dset, backend=None, n_pos=30, gid=3)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)   # no division by zero either
        root = pn.panel(e).get_root(Document())
        assert root is not None
        assert f'[{a1}]' in e.state.message['text'] and e.state.message['level'] == 'warning'
        e.state.gid = 2                           # width 0: a placeholder, the image named
        assert e.overview.objects and e._ov_dims == (600, 0)
        overlay = e.overview.objects[0].object[()]
        assert overlay.get(0).bounds.lbrt() == (0, 0, 1, 600)
        assert 'image 2' in e.state.message['text']
        per_image, overall = views.coverage(e.state.pools, e.state.shared.dset)
    assert 2 not in set(per_image['gid']) or \
        per_image.loc[per_image['gid'] == 2, 'covered'].item() == 0.0
    assert 0 < overall < 1
    assert views.image_dims(dset, 2) == (600, 0)


def test_status_and_gallery_titles_say_the_scale_and_that_windows_repeat():
    """The tour found 'window 256x256' shown at scale 0.5, and no word that 40 positives
    of 12 annotations repeat windows."""
    from app.layout import Explorer
    e = Explorer(dataset='shapes8', backend=None, window_dims=(256, 256), scale=0.5, n_pos=4)
    s = e.state
    status = e._status(s.revision, s.gid)
    assert 'window 256x256 at scale 0.5,' in status and 'repeat' not in status
    for kind in ('pos', 'neg'):
        title = e._gallery_titles[kind].object
        assert '(window 256x256 at scale 0.5)' in title and 'repeat' not in title
    n_annots = len(s.shared.dset.anns)
    assert len(s.sampler.regions.targets) == n_annots      # every annotation is a positive
    s.param.update(n_pos=n_annots + 7, scale=[0.5, 0.25])
    e._apply_updates()
    status = e._status(s.revision, s.gid)
    note = f'{n_annots} distinct: windows repeat'
    assert f'{n_annots + 7} positives ({note}),' in status
    assert 'window 256x256 at scale 0.5x0.25 (h x w),' in status
    assert f'(window 256x256 at scale 0.5x0.25 (h x w); {note})' in e._gallery_titles['pos'].object
    assert 'repeat' not in e._gallery_titles['neg'].object
    s.scale = None
    e._apply_updates()
    assert 'window 256x256, pad' in e._status(s.revision, s.gid)


def _drawn_annotation_colors(root) -> dict:
    """``{aid: colour}`` of every annotation glyph in a rendered Bokeh ``root``."""
    from bokeh.models import ColumnDataSource
    out = {}
    for cds in root.select({'type': ColumnDataSource}):
        data = cds.data
        if {'aid', 'category', 'color'} <= set(data) and 'kind' not in data:
            out.update(zip((int(a) for a in data['aid']), data['color']))
    return out


def test_overview_draws_a_newly_opened_dataset_in_its_category_colours():
    """The tour: after a demo switch the overview drew the annotations in white (the old
    dataset's colours, which lack the new category ids) until the image changed."""
    from bokeh.document import Document
    import panel as pn

    from app.layout import Explorer
    e = Explorer(dataset='shapes8', backend=None, n_pos=4)
    root = pn.panel(e).get_root(Document())
    for key in ('vidshapes3-frames6', 'shapes8'):
        e.demo_select.value = key
        s = e.state
        assert s.dataset == key
        dset = s.shared.dset
        want = views.category_colors(dset)
        drawn = _drawn_annotation_colors(root)
        aids = set(dset.index.gid_to_aids[s.gid])
        assert aids and aids <= set(drawn)
        for aid in aids:
            assert drawn[aid] == want[dset.anns[aid]['category_id']], (key, aid)
        assert '#ffffff' not in {drawn[a] for a in aids}


def test_overview_click_selects_no_annotation_or_window():
    """The tour: a click on an annotation selected its glyph, and Bokeh faded every other
    annotation until a later click. The overview's tap tool now hits the image only."""
    from bokeh.document import Document
    from bokeh.models import GlyphRenderer, ImageRGBA, TapTool
    import panel as pn

    from app.layout import Explorer
    e = Explorer(dataset='shapes8', backend=None, n_pos=4)
    root = pn.panel(e.overview).get_root(Document())
    taps = list(root.select({'type': TapTool}))
    assert len(taps) == 1
    renderers = list(root.select({'type': GlyphRenderer}))
    images = [r for r in renderers if isinstance(r.glyph, ImageRGBA)]
    drawn = [r for r in renderers if r not in images]
    assert len(images) == 1 and len(drawn) >= 4      # boxes, polygons, keypoints, windows
    assert taps[0].renderers == images
    e.state.gid = 2                                  # another image: still the image only
    assert list(root.select({'type': TapTool}))[0].renderers == images


def test_overview_reports_a_wheel_zoom_soon():
    """Bokeh reports a wheel zoom's ranges only once the interaction has been idle for the
    figure's ``lod_timeout`` (500 ms by default), so the sharper image of a huge image came
    half a second late; the overview's figure waits WHEEL_SETTLE_MS, also after an image
    change (the plot is reused)."""
    from bokeh.document import Document
    from bokeh.models import Plot
    import panel as pn

    from app.layout import Explorer
    from app.overview import WHEEL_SETTLE_MS
    e = Explorer(dataset='shapes8', backend=None, n_pos=4)
    root = pn.panel(e.overview).get_root(Document())
    assert WHEEL_SETTLE_MS < Plot().lod_timeout
    assert [p.lod_timeout for p in root.select({'type': Plot})] == [WHEEL_SETTLE_MS]
    e.state.gid = 2
    assert [p.lod_timeout for p in root.select({'type': Plot})] == [WHEEL_SETTLE_MS]
