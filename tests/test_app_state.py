"""The explorer's state without a browser: config round trips, pools, roots, sessions."""
import os
import threading

import numpy as np
import pytest

from app.pools import clear_cache, get_shared, session_sampler
from app.state import MAX_WINDOW, ExplorerState
from sampler_core import CocoSampler, SamplingConfig


@pytest.fixture
def state():
    return ExplorerState(dataset='shapes8', backend=None, n_pos=6, neg_to_pos_ratio=1.0)


def _windows(sampler, n):
    out = []
    for i in range(n):
        s = sampler.load_item(i)
        out.append((s['target']['gid'], s['target']['space_slice'], s['im'].shape))
    return out


def test_state_is_a_sampling_config_and_exports_a_plain_one(state):
    assert isinstance(state, SamplingConfig)
    cfg = state.to_config()
    assert type(cfg) is SamplingConfig
    assert cfg.to_dict() == state.config_dict()
    text = state.export_yaml()
    again = SamplingConfig.loads(text)
    assert again.dataset_hash == state.shared.dataset_hash
    assert set(again.to_dict()) == set(SamplingConfig.FIELDS)


def test_state_export_rebuilds_the_same_sampler(state, tmp_path):
    state.param.update(window_dims=(48, 80), pad=(3, 2), seed=7, n_pos=5, n_neg=4,
                       visible_thresh=0.3, with_annots=['boxes'])
    path = tmp_path / 'config.yaml'
    path.write_text(state.export_yaml())
    rebuilt = CocoSampler.from_config(str(path))
    n = state.pools.n_pos + state.pools.n_neg
    assert (rebuilt.regions.n_positives, rebuilt.regions.n_negatives) == (5, 4)
    assert _windows(rebuilt, n) == _windows(state.sampler, n)
    # the pool tables show exactly those windows (without pad)
    for i in range(n):
        row = state.pools.item(i)
        sl = rebuilt.load_item(i)['target']['space_slice']
        assert (row['y0'], row['x0'], row['y1'], row['x1']) == (
            sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)


def test_state_window_change_redraws_pools(state):
    state.window_dims = (64, 96)
    pos = state.pools.pos
    assert ((pos['x1'] - pos['x0']) == 96).all() and ((pos['y1'] - pos['y0']) == 64).all()
    neg = state.pools.neg
    assert ((neg['x1'] - neg['x0']) == 96).all()
    rev = state.revision
    pools = state.pools
    state.visible_thresh = 0.5          # not a pool key: no new preselect
    assert state.pools is pools and state.revision == rev + 1
    assert state.sampler.config.visible_thresh == 0.5


def test_state_box_size_windows(state):
    state.window_dims = None
    pos = state.pools.pos
    assert np.allclose(pos['x1'] - pos['x0'], np.ceil(pos['width']))


def test_state_square_windows_match_load_item(state, tmp_path):
    """'square': the overlay's windows are the squares load_item cuts, and the exported
    config keeps 'square'."""
    state.window_dims = 'square'
    pools = state.pools
    for table in (pools.pos, pools.neg):
        assert len(table) and np.array_equal(table['x1'] - table['x0'], table['y1'] - table['y0'])
    for index in range(pools.n_pos + pools.n_neg):
        row = pools.item(index)
        ys, xs = state.sampler.load_item(index)['target']['space_slice']
        assert (xs.start, ys.start, xs.stop, ys.stop) == \
            (row['x0'], row['y0'], row['x1'], row['y1']), index
    pos = pools.pos
    assert np.array_equal(pos['x1'] - pos['x0'],
                          np.maximum(np.ceil(pos['width']), np.ceil(pos['height'])))
    path = tmp_path / 'square.yaml'
    path.write_text(state.export_yaml())
    assert SamplingConfig.load(path).window_dims == 'square'


def test_state_refuses_a_window_larger_than_allowed(state):
    before = state.window_dims
    state.window_dims = (MAX_WINDOW + 8, 64)
    assert state.window_dims == before
    assert 'larger than allowed' in state.message['text']
    state.window_dims = (32, 32)        # keeps working
    assert state.pools.config.window_dims == (32, 32)


def test_state_unknown_category_is_reported_and_reverted(state):
    state.categories = ['no-such-category']
    assert state.categories == []
    assert 'no-such-category' in state.message['text']


def test_state_category_filter_for_positives(state):
    state.param.update(categories=['star'], n_pos=4)
    star = state.shared.dset.name_to_cat['star']['id']
    assert (state.pools.pos['category_id'] == star).all()


@pytest.mark.parametrize('make_path', [
    lambda root: '/etc/passwd',
    lambda root: os.path.join(root, '..', 'outside.kwcoco.json'),
    lambda root: 'symlink',
], ids=['absolute', 'dotdot', 'symlink'])
def test_state_refuses_paths_outside_roots_without_reading(shapes_copy, tmp_path, monkeypatch,
                                                           make_path):
    root, path = shapes_copy
    outside = tmp_path / 'outside.kwcoco.json'
    outside.write_text(path.read_text())
    state = ExplorerState(dataset='shapes8', backend=None, roots=[str(root)])
    text = make_path(str(root))
    if text == 'symlink':
        link = root / 'link.kwcoco.json'
        if not link.exists():
            link.symlink_to(outside)
        text = str(link)
    import app.state
    calls = []
    monkeypatch.setattr(app.state, 'get_shared', lambda *a, **k: calls.append(a))
    state.dataset = text
    assert calls == []                   # nothing was opened
    assert state.dataset == 'shapes8'
    assert state.message['text'].startswith('refused')


def test_state_opens_a_path_inside_roots_and_refuses_outside_images(shapes_copy, tmp_path):
    root, path = shapes_copy
    state = ExplorerState(dataset='shapes8', backend=None, roots=[str(root)])
    state.dataset = str(path)
    assert state.dataset_label == str(path) and state.message is None
    assert len(state.shared.dset.imgs) == 8
    # a dataset inside the roots whose images are outside
    import kwcoco
    dset = kwcoco.CocoDataset.demo('shapes8').copy()
    bad = root / 'bad.kwcoco.json'
    dset.fpath = str(bad)
    dset.dump(str(bad))
    state.dataset = str(bad)
    assert state.dataset == str(path)
    assert 'outside the allowed folders' in state.message['text']


def test_image_files_are_checked_once_per_dataset_and_roots(shapes_copy, tmp_path,
                                                             monkeypatch):
    import app.roots
    root, path = shapes_copy
    checked = []
    real = app.roots.check_dataset_files
    monkeypatch.setattr(app.roots, 'check_dataset_files',
                        lambda dset, roots: checked.append(list(roots)) or real(dset, roots))
    import app.pools
    monkeypatch.setattr(app.pools, 'check_dataset_files', app.roots.check_dataset_files)
    first = ExplorerState(dataset=str(path), backend=None, roots=[str(root)])
    first.shared._roots_checked.clear()          # (an earlier test may have opened it)
    checked.clear()
    second = ExplorerState(dataset=str(path), backend=None, roots=[str(root)])
    third = ExplorerState(dataset=str(path), backend=None, roots=[str(root)])
    assert first.shared is second.shared is third.shared
    assert checked == [[str(root)]]             # checked once, not per session
    more = tmp_path / 'uploads'
    more.mkdir()
    first.shared.check_files_inside([str(root), str(more)])     # more roots: passes as is
    assert checked == [[str(root)]]
    # other roots are checked again, and a refusal is never remembered
    other = tmp_path / 'other'
    other.mkdir()
    link = other / path.name
    link.symlink_to(path)
    for _ in range(2):
        with pytest.raises(PermissionError, match='outside the allowed folders'):
            first.shared.check_files_inside([str(other)])
    assert len(checked) == 3


def test_state_bad_dataset_file_is_a_message(shapes_copy):
    root, _ = shapes_copy
    broken = root / 'broken.kwcoco.json'
    broken.write_text('{"images": [1, 2')
    state = ExplorerState(dataset='shapes8', backend=None, roots=[str(root)])
    state.dataset = str(broken)
    assert state.dataset == 'shapes8'
    assert state.message['level'] == 'error'
    state.dataset = str(root / 'missing.kwcoco.json')
    assert 'does not exist' in state.message['text']


def test_state_load_config_restores_every_field(state, tmp_path):
    cfg = SamplingConfig(dataset='shapes8', backend=None, window_dims=(40, 56), pad=(4, 6),
                         pad_mode='reflect', visible_thresh=0.25, with_annots=['boxes'],
                         categories=['eff'], n_pos=3, n_neg=2, neg_overlap=0.1, seed=11)
    assert state.load_config(cfg.dumps())
    for key in SamplingConfig.FIELDS:
        if key not in ('dataset_hash',):
            assert getattr(state, key) == getattr(cfg, key), key
    assert (state.pools.n_pos, state.pools.n_neg) == (3, 2)


def test_state_load_config_errors_leave_state_alone(state):
    before = state.config_dict()
    assert not state.load_config('window_dims: [1, 2, 3]\n')
    assert 'window_dims' in state.message['text']
    assert not state.load_config('windw_dims: [1, 2]\n')
    assert not state.load_config('dataset: /etc/hosts\n')
    assert state.message['text'].startswith('refused')
    assert state.config_dict() == before


def test_state_browsing(state):
    ids = state.image_ids()
    assert ids == sorted(state.shared.dset.imgs)
    state.gid = ids[0]
    state.step_image(1)
    assert state.gid == ids[1]
    state.step_image(-1)
    state.step_image(-1)
    assert state.gid == ids[-1]
    state.search = 'img_00003'
    assert state.image_ids() == [3]
    state.search = ''
    state.image_categories = ['superstar']
    ss = state.shared.dset.name_to_cat['superstar']['id']
    expect = sorted({a['image_id'] for a in state.shared.dset.anns.values()
                     if a['category_id'] == ss})
    assert state.image_ids() == expect


def test_state_select_item_moves_to_its_image(state):
    index = state.pools.n_pos        # the first negative
    state.select_item(index)
    assert state.gid == state.pools.neg['gid'].iloc[0] and state.selected_item == index
    state.click_xy = (10.0, 10.0)
    other = [g for g in state.image_ids() if g != state.gid][0]
    state.gid = other
    assert state.selected_item is None and state.click_xy is None


def test_sessions_share_the_sampler_but_not_the_pools():
    clear_cache()
    a = ExplorerState(dataset='shapes8', backend=None, n_pos=5, seed=1)
    b = ExplorerState(dataset='shapes8', backend=None, n_pos=9, seed=2, window_dims=(32, 32))
    shared = get_shared('shapes8', backend=None)
    assert a.shared is b.shared is shared
    assert a.sampler is not b.sampler and a.sampler.regions is not b.sampler.regions
    assert a.sampler.regions.isect_index is shared.sampler.regions.isect_index
    assert a.sampler.frames is shared.sampler.frames
    # the shared sampler's pools were never preselected
    assert shared.sampler.regions._negative_pool is None
    assert shared.sampler.regions.n_positives == len(shared.sampler.regions.targets)
    assert shared.sampler.config is None
    assert (a.pools.n_pos, b.pools.n_pos) == (5, 9)
    a.window_dims = (100, 60)
    assert (b.pools.pos['x1'] - b.pools.pos['x0'] == 32).all()
    assert b.sampler.load_item(0)['im'].shape[:2] == (32, 32)
    assert a.sampler.load_item(0)['im'].shape[:2] == (100, 60)


def test_sessions_in_threads_never_cross_talk():
    """Five sessions change different values at once; each sees only its own pools."""
    clear_cache()
    states = [ExplorerState(dataset='shapes8', backend=None, n_pos=4) for _ in range(5)]
    errors = []
    barrier = threading.Barrier(5)

    def work(k, st):
        try:
            ref = CocoSampler(st.shared.dset, backend=None)
            barrier.wait()
            for step in range(4):
                st.param.update(window_dims=(16 + 8 * k, 24 + 8 * step), seed=k * 10 + step,
                                n_pos=3 + k)
                ref.apply_config(st.to_config())
                n = st.pools.n_pos + st.pools.n_neg
                assert _windows(ref, n) == _windows(st.sampler, n), (k, step)
        except Exception as ex:  # pragma: no cover - reported below
            errors.append(repr(ex))

    threads = [threading.Thread(target=work, args=(k, st)) for k, st in enumerate(states)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k, st in enumerate(states):
        assert st.window_dims == (16 + 8 * k, 48) and st.pools.n_pos == 3 + k


def test_session_sampler_copy_leaves_shared_pools_alone():
    shared = CocoSampler.demo('shapes8')
    shared.regions.preselect(n_pos=2, n_neg=3, window_dims=(20, 20), rng=0)
    before = (shared.regions._pos_select_idxs.copy(), shared.regions.n_negatives)
    mine = session_sampler(shared)
    mine.regions.preselect(n_pos=7, n_neg=1, window_dims=(40, 40), rng=1)
    mine.load_negative()             # walks the copy's negative cursor only
    assert np.array_equal(shared.regions._pos_select_idxs, before[0])
    assert shared.regions.n_negatives == before[1]


def test_app_module_doctests():
    import xdoctest
    for mod in ('app.roots', 'app.demo', 'app.pools', 'app.state', 'app.link', 'app.views'):
        result = xdoctest.doctest_module(mod, command='all', argv=[])
        assert result['n_failed'] == 0 and result['n_passed'] > 0, (mod, result)


def test_import_app_loads_no_gui():
    import subprocess
    import sys
    code = ('import sys, app, app.cli, app.state, app.pools, app.roots, app.link\n'
            'bad = [m for m in ("panel", "holoviews", "bokeh") if m in sys.modules]\n'
            'assert not bad, bad\n')
    subprocess.run([sys.executable, '-c', code], check=True)


@pytest.mark.parametrize('extra', [
    {},
    {'window_dims': None},
    {'mode': 'grid', 'window_dims': (200, 200)},
    {'balance': 'inverse'},
    {'split_by': 'image', 'val_fraction': 0.5},
    {'scale': 0.5},
], ids=['random', 'box-size', 'grid', 'balanced', 'split', 'scaled'])
def test_state_pool_tables_are_the_windows_load_item_returns(extra):
    """Whatever the config (fields added to SamplingConfig later too), the tables the
    overview draws are the windows the training loop gets."""
    state = ExplorerState(dataset='shapes8', backend=None, n_pos=6, n_neg=4)
    known = {k: v for k, v in extra.items() if k in SamplingConfig.FIELDS}
    if len(known) < len(extra):
        pytest.skip(f'SamplingConfig has no {sorted(set(extra) - set(known))}')
    state.param.update(**known)
    assert state.message is None, state.message
    pools = state.pools
    for i in range(pools.n_pos + pools.n_neg):
        row = pools.item(i)
        sl = state.sampler.load_item(i)['target']['space_slice']
        assert (row['y0'], row['x0'], row['y1'], row['x1']) == (
            sl[0].start, sl[1].start, sl[0].stop, sl[1].stop), (i, row)


def test_a_changed_dataset_file_is_read_again(shapes_copy):
    root, path = shapes_copy
    import json
    changed = root / 'changed.kwcoco.json'
    data = json.loads(path.read_text())
    changed.write_text(json.dumps(data))
    first = get_shared(str(changed), backend=None)
    assert get_shared(str(changed), backend=None) is first
    data['annotations'] = data['annotations'][:5]
    changed.write_text(json.dumps(data) + ' ')
    again = get_shared(str(changed), backend=None)
    assert again is not first and len(again.dset.anns) == 5


def _state_rows(state) -> list:
    """(gid, cx, cy, aid, x0, y0, x1, y1) of every pool row the explorer shows, by index."""
    table = state.pools.all
    assert table['index'].tolist() == list(range(len(table)))
    return [tuple(r) for r in table[['gid', 'cx', 'cy', 'aid', 'x0', 'y0', 'x1', 'y1']]
            .astype(float).values.tolist()]


def _rebuilt_rows(sampler) -> list:
    """The same rows of a sampler built from a config: its pool tables and the window
    ``load_item`` cuts (``space_slice``, without pad)."""
    pos, neg = sampler.regions.pool_tables()
    rows = []
    for i in range(sampler.regions.n_samples):
        pool, j = (pos, i) if i < len(pos['gid']) else (neg, i - len(pos['gid']))
        sl = sampler.load_item(i, with_annots=False)['target']['space_slice']
        rows.append(tuple(float(v) for v in (pool['gid'][j], pool['cx'][j], pool['cy'][j],
                                              pool['aid'][j], sl[1].start, sl[0].start,
                                              sl[1].stop, sl[0].stop)))
    return rows


def test_pad_redraws_the_pools_of_a_block_split(shapes_copy):
    """Measured break 1: pad set after the split showed pools drawn without it (30 of 40
    rows differed from the export's), windows that leak into val."""
    root, path = shapes_copy
    state = ExplorerState(dataset=str(path), roots=[root], backend=None)
    # one widget at a time, as a person sets them
    state.window_dims = (64, 64)
    state.n_pos = 20
    state.seed = 80
    state.split_by = 'block'
    state.param.update(split_block=(256, 256))
    state.pad = (0, 32)
    assert state.message is None, state.message
    rebuilt = CocoSampler.from_config(SamplingConfig.loads(state.export_yaml()))
    assert rebuilt.regions.n_positives == 20 and rebuilt.regions.n_samples == 40
    assert _state_rows(state) == _rebuilt_rows(rebuilt)


def _every_url_field(state) -> list:
    """(key, value) for every URL key, each different from the state's default."""
    cats = state.category_names
    return [('backend', 'npy'), ('window_dims', (80, 96)), ('pad', (4, 8)),
            ('pad_value', 3.5), ('pad_mode', 'reflect'), ('scale', 0.75),
            ('channels', 'r|g|b'), ('visible_thresh', 0.25),
            ('with_annots', ['boxes', 'keypoints']), ('categories', cats[:2]),
            ('n_pos', None), ('n_neg', 5), ('neg_to_pos_ratio', 0.5), ('neg_overlap', 0.1),
            ('seed', 11), ('grid_overlap', 0.25), ('grid_edge', 'drop'),
            ('class_weights', {cats[0]: 2.0, cats[1]: 0.5}), ('balance', 'inverse'),
            ('split_by', 'image'), ('val_fraction', 0.3), ('split_seed', 5),
            ('split_block', (300, 200)),
            ('epoch_length', 50), ('scale_range', (0.5, 1.5)), ('window_size_range', (40, 80)),
            ('max_nodata_fraction', 0.2), ('gid', 3), ('search', '12'), ('image_categories', cats[:1]),
            ('gallery_size', 4), ('detail_frames', 2), ('hidden_categories', cats[1:2])]


def test_link_reopens_every_config_field(shapes_copy, tmp_path):
    """Measured break 2: the query the app writes (Panel's location sync, through
    app.link) reopens a state with the same config; it dropped scale, balance, split_*,
    mode, grid_*, class_weights and pad_value, and None came back as the text 'null'."""
    from panel.io.location import Location

    from app.link import URL_CONFIG_KEYS, URL_KEYS, link_location
    root, path = shapes_copy
    opts = dict(roots=[root], workdir=str(tmp_path / 'cache'))
    state = ExplorerState(dataset='shapes8', backend=None, **opts)
    location = Location()
    link_location(location, state)
    state.dataset = str(path)
    changes = _every_url_field(state)
    # output_dims is exclusive with scale: the 'output' case of the test below; the time
    # fields need videos: its 'video' case; resolution: tests/test_resolution.py
    assert {k for k, _ in changes} | {'dataset', 'mode', 'output_dims', 'time_steps',
                                      'time_sampling', 'time_span', 'resolution'} == \
        set(URL_KEYS)
    for key, value in changes:          # one widget at a time
        setattr(state, key, value)
        assert state.message is None, (key, state.message)
        assert getattr(state, key) == value
    assert 'split_by=image' in location.search and 'scale=0.75' in location.search
    fresh = ExplorerState(dataset='shapes8', backend=None, **opts)
    link_location(Location(search=location.search), fresh)
    assert fresh.message is None, fresh.message
    for key, value in changes + [('dataset', str(path)), ('mode', 'random')]:
        assert getattr(fresh, key) == value, key
    assert fresh.export_yaml() == state.export_yaml()
    assert set(URL_CONFIG_KEYS) == set(SamplingConfig.FIELDS) - {
        'version', 'dataset_hash', 'workdir'}


@pytest.mark.parametrize('values', [
    {'mode': 'grid', 'window_dims': (48, 64), 'grid_overlap': 0.5, 'grid_edge': 'pad'},
    {'window_dims': 'square', 'scale': (0.5, 0.75), 'n_pos': None, 'channels': 'null'},
    {'window_dims': None, 'balance': 'weights', 'class_weights': 'one category',
     'dataset': 'shapes8', 'search': 'true'},
    {'window_dims': (64, 80), 'output_dims': (32, 48), 'window_size_range': (16, 64)},
    {'dataset': 'vidshapes3-frames6', 'time_steps': 3, 'time_sampling': 'random',
     'time_span': 4},
], ids=['grid', 'square', 'box-size', 'output', 'video'])
def test_link_reopens_values_that_are_not_plain_scalars(values):
    from panel.io.location import Location

    from app.link import link_location
    state = ExplorerState(dataset='shapes8', backend=None)
    location = Location()
    link_location(location, state)
    if values.get('class_weights') == 'one category':
        values = {**values, 'class_weights': {state.category_names[-1]: 1.0}}
    state.param.update(**values)
    assert state.message is None, state.message
    fresh = ExplorerState(dataset='shapes8', backend=None)
    link_location(Location(search=location.search), fresh)
    assert fresh.message is None, fresh.message
    for key, value in values.items():
        assert getattr(fresh, key) == value, key
    assert fresh.config_dict() == state.config_dict()


def test_link_with_a_bad_value_keeps_the_state_and_says_why():
    from panel.io.location import Location
    from panel.util import parse_query

    from app.link import link_location
    location = Location(search='?n_pos=abc&seed=4&gallery_size=3&mode=grid&balance=inverse'
                               '&channels=%22r|g')
    state = ExplorerState(dataset='shapes8', backend=None)
    link_location(location, state)
    assert 'n_pos' in state.message['text'] and 'channels' in state.message['text']
    assert (state.n_pos, state.seed, state.mode, state.gallery_size, state.channels) == (
        16, 0, 'random', 3, None)
    # the query shows what the state holds
    query = parse_query(location.search)
    assert (query['n_pos'], query['seed'], query['mode'], query['gallery_size'],
            query['channels']) == (16, 0, 'random', 3, 'null')
    location = Location(search='?window_dims=[9000, 64]')
    state = ExplorerState(dataset='shapes8', backend=None)
    link_location(location, state)
    assert 'larger than allowed' in state.message['text']
    assert state.window_dims == (128, 128)
    assert parse_query(location.search)['window_dims'] == [128, 128]


def _without_annotations(dset):
    dset = dset.copy()
    dset.remove_annotations(list(dset.anns))
    return dset


def test_state_dataset_without_annotations_shows_its_negatives():
    """No annotations: no positives, the negatives n_pos would have paired (issue 13.16);
    the exported config rebuilds exactly those windows."""
    import kwcoco
    dset = _without_annotations(kwcoco.CocoDataset.demo('shapes8'))
    state = ExplorerState(dataset=dset, backend=None, n_pos=6, window_dims=(64, 48), seed=3)
    assert (state.n_pos, state.n_neg) == (0, 6)
    assert (state.pools.n_pos, state.pools.n_neg) == (0, 6)
    assert 'no annotations' in state.message['text']
    ref = CocoSampler(dset, backend=None)
    assert ref.apply_config(SamplingConfig.loads(state.to_config().dumps())) == (0, 6)
    assert _windows(ref, 6) == _windows(state.sampler, 6)
    assert all(shape[:2] == (64, 48) for _, _, shape in _windows(ref, 6))
    assert state.image_ids() == sorted(dset.imgs)


def test_state_switches_to_a_dataset_without_annotations(shapes_copy):
    import kwcoco
    root, path = shapes_copy
    empty = _without_annotations(kwcoco.CocoDataset(str(path)))
    epath = root / 'empty.kwcoco.json'
    empty.dump(str(epath))
    state = ExplorerState(dataset=str(path), roots=[str(root)], backend=None, n_pos=5)
    assert state.pools.n_pos == 5
    state.dataset = str(epath)
    assert state.dataset == str(epath) and state.shared.dset.n_annots == 0
    assert (state.pools.n_pos, state.pools.n_neg) == (0, 5) and state.n_pos == 0
    assert state.gid in empty.imgs


@pytest.mark.parametrize('change', [{'n_pos': 10_000_000}, {'n_neg': 100_000_000},
                                    {'neg_to_pos_ratio': 1e9},
                                    {'mode': 'grid', 'window_dims': (1, 1)}],
                         ids=['n_pos', 'n_neg', 'ratio', 'grid-1x1'])
def test_state_refuses_pools_larger_than_the_explorer_draws(change, monkeypatch):
    """A link or widget asking for huge pools is refused before any work, naming the
    limit, and the state keeps its pools (issue 13.5: the server hung for minutes)."""
    from app import state as state_mod
    from sampler_core.regions import CocoRegions
    state = ExplorerState(dataset='shapes8', backend=None, n_pos=4)
    before = state.config_dict()
    calls = []
    monkeypatch.setattr(CocoRegions, 'preselect', lambda *a, **k: calls.append(1))
    monkeypatch.setattr(CocoRegions, 'preselect_grid', lambda *a, **k: calls.append(1))
    state.param.update(**change)
    assert calls == []
    assert f'{state_mod.MAX_EXPLORER_WINDOWS:,}' in state.message['text']
    assert state.config_dict() == before and state.pools.n_pos == 4


def test_state_says_which_annotations_the_library_left_out(shapes_copy):
    """Annotations the library leaves out of the pools (a box wholly outside its image, an
    unknown category) are named to the explorer's user, not only in the server's log."""
    import kwcoco
    root, src = shapes_copy
    dset = kwcoco.CocoDataset(str(src))
    gid = sorted(dset.imgs)[0]
    aid_off = dset.add_annotation(image_id=gid, category_id=sorted(dset.cats)[0],
                                  bbox=[5000, 5000, 10, 10])
    path = root / 'odd.kwcoco.json'
    dset.fpath = str(path)
    dset.dump(str(path))
    state = ExplorerState(dataset=str(path), roots=[str(root)], backend=None)
    assert state.message['level'] == 'warning'
    assert str(aid_off) in state.message['text'] and 'outside' in state.message['text']
    assert aid_off not in set(state.pools.pos['aid'].tolist())
