"""The config owns its contract: field roles, and the explorer shows what training gets.

:attr:`SamplingConfig.FIELD_ROLES` says what a change of each field needs; the
explorer (:class:`app.state.ExplorerState`) acts on it. These tests check the
roles against what sampling actually does, and that an explorer changed one
widget at a time shows the pools and pixels ``CocoSampler.from_config`` of its
export gives.
"""
from __future__ import annotations

import numpy as np
import pytest

from sampler_core import CocoSampler, SamplingConfig
from sampler_core.config import ROLES

#: a value other than the default for every field that only changes how a window is read
READ_CHANGES = {
    'pad_mode': 'reflect',
    'pad_value': 7,
    'scale': (0.5, 0.75),
    'channels': 'r|g',
    'visible_thresh': 0.6,
    'with_annots': ['boxes'],
    'epoch_length': 10,
    'scale_range': (0.5, 1.0),
    'window_size_range': (16, 32),
    'output_dims': (32, 40),
    'time_steps': 3,
    'time_sampling': 'random',
    'time_span': 4,
    'resolution': '0.5 GSD',
}
#: fields a READ_CHANGES value needs set with it
_READ_COMPANIONS = {'time_sampling': {'time_steps': 2},
                    'time_span': {'time_steps': 2, 'time_sampling': 'uniform'}}


@pytest.fixture(scope='module')
def video_res_dset():
    """A video demo whose videos carry a resolution (time and resolution fields apply)."""
    import kwcoco
    dset = kwcoco.CocoDataset.demo('vidshapes2', num_frames=4)
    dset = dset.copy()
    for video in dset.index.videos.values():
        video['resolution'] = '1 meter'
    return dset


def test_every_field_has_exactly_one_role():
    cfg = SamplingConfig
    sets = {'sampler': cfg.SAMPLER_FIELDS, 'pools': cfg.POOL_FIELDS,
            'read': cfg.READ_FIELDS, 'inert': cfg.INERT_FIELDS}
    assert set(sets) == set(ROLES)
    for key in cfg.FIELDS:
        assert [role for role, fields in sets.items() if key in fields] == \
            [cfg.FIELD_ROLES[key]], key
    assert set().union(*sets.values()) == set(cfg.FIELDS)
    assert sum(len(v) for v in sets.values()) == len(cfg.FIELDS)
    # every parameter of the config is a field (nothing declared without a role)
    assert set(cfg.param) - {'name'} == set(cfg.FIELDS)
    assert set(READ_CHANGES) == cfg.READ_FIELDS
    # the roles the project's issue measured
    assert cfg.FIELD_ROLES['pad'] == 'pools'
    assert {'dataset', 'backend', 'workdir'} == cfg.SAMPLER_FIELDS
    assert {'version', 'dataset_hash'} == cfg.INERT_FIELDS


def test_change_role_is_the_strongest():
    role = SamplingConfig.change_role
    assert role([]) == 'inert'
    assert role(['dataset_hash']) == 'inert'
    assert role(['visible_thresh', 'version']) == 'read'
    assert role({'scale', 'split_block'}) == 'pools'
    assert role(('with_annots', 'backend', 'seed')) == 'sampler'
    with pytest.raises(KeyError, match='gid'):
        role(['seed', 'gid'])


def _pools(sampler) -> list:
    pos, neg = sampler.regions.pool_tables()
    cols = ('gid', 'aid', 'cx', 'cy', 'width', 'height')
    return [np.asarray(t[c]).tolist() for t in (pos, neg) for c in cols]


@pytest.mark.parametrize('split', [
    {}, {'split_by': 'image'}, {'split_by': 'block', 'split_block': (256, 256)}],
    ids=['no-split', 'image-split', 'block-split'])
def test_read_fields_do_not_change_the_pools(video_res_dset, split):
    """Every 'read' field changed on its own keeps the pools (a block split with pad
    too: pad itself is a pool field)."""
    base = dict(dataset='vidshapes2', backend=None, window_dims=(64, 64), pad=(8, 32),
                n_pos=12, n_neg=6, seed=5, **split)
    sampler = CocoSampler(video_res_dset, backend=None)
    sampler.apply_config(SamplingConfig(**base))
    before = _pools(sampler)
    assert len(before[0]) == 12
    for key, value in READ_CHANGES.items():
        fields = dict(base, **_READ_COMPANIONS.get(key, {}), **{key: value})
        if fields.get('time_steps') is not None and split.get('split_by') in ('image', 'block'):
            with pytest.raises(ValueError, match='use split_by "video"'):   # would leak
                SamplingConfig(**fields)
            continue
        cfg = SamplingConfig(**fields)
        assert getattr(cfg, key) != getattr(SamplingConfig(**base), key), key
        sampler.apply_config(cfg)
        assert _pools(sampler) == before, key


def test_pad_changes_the_pools_of_a_block_split(shapes8_dset):
    """Why pad is a pool field: a block split keeps windows whose padded extent lies in
    one subset, so a wider pad leaves out windows near block edges."""
    base = dict(dataset='shapes8', backend=None, window_dims=(64, 64), n_pos=None, n_neg=0,
                split_by='block', split_block=(256, 256))
    sampler = CocoSampler(shapes8_dset, backend=None)
    sampler.apply_config(SamplingConfig(**base))
    unpadded = set(np.asarray(sampler.regions.pool_tables()[0]['aid']).tolist())
    sampler.apply_config(SamplingConfig(**base, pad=(0, 32)))
    padded = set(np.asarray(sampler.regions.pool_tables()[0]['aid']).tolist())
    assert padded < unpadded


# ----------------------------------------------------------------------------- the property
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

#: category names of the dataset, filled in by the test (the demo draws them per process)
_CATS: list = []

_side = st.integers(48, 200)
_frac = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75])


#: one strategy per field a person can change in the explorer (dataset, backend and
#: workdir aside: they rebuild the sampler, and the property is about one dataset)
FIELD_VALUES = {
    'window_dims': st.one_of(st.tuples(_side, _side), st.sampled_from(['square', None])),
    'pad': st.tuples(st.integers(0, 40), st.integers(0, 40)),
    'pad_mode': st.sampled_from(['constant', 'reflect', 'edge']),
    'pad_value': st.integers(0, 255),
    'scale': st.one_of(st.none(), st.sampled_from([0.5, 0.75, 1.5]),
                       st.tuples(st.sampled_from([0.5, 1.0]), st.sampled_from([0.75, 2.0]))),
    'channels': st.sampled_from([None, 'r|g|b', 'g', 'b|r']),
    'visible_thresh': _frac,
    'with_annots': st.lists(st.sampled_from(['boxes', 'segmentation', 'keypoints']),
                            unique=True),
    'categories': st.lists(st.integers(0, 7), unique=True, max_size=3),   # indices
    'n_pos': st.one_of(st.none(), st.integers(0, 12)),
    'n_neg': st.one_of(st.none(), st.integers(0, 8)),
    'neg_to_pos_ratio': st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    'neg_overlap': st.sampled_from([0.0, 0.2, 0.5]),
    'seed': st.integers(0, 1000),
    'mode': st.sampled_from(['random', 'grid']),
    'grid_overlap': _frac,
    'grid_edge': st.sampled_from(['shift', 'pad', 'drop']),
    'balance': st.sampled_from(['none', 'inverse', 'weights']),
    'class_weights': st.dictionaries(st.integers(0, 7), st.sampled_from([0.0, 0.5, 1.0, 3.0]),
                                     max_size=3),   # category indices -> weights
    'split_by': st.sampled_from(['none', 'image', 'video', 'block']),
    'val_fraction': st.sampled_from([0.0, 0.25, 0.5]),
    'split_seed': st.integers(0, 100),
    'split_block': st.tuples(st.integers(64, 400), st.integers(64, 400)),
    'epoch_length': st.one_of(st.none(), st.integers(1, 50)),
    'scale_range': st.one_of(st.none(), st.tuples(st.sampled_from([0.5, 0.75]),
                                                  st.sampled_from([1.0, 1.25]))),
    # at most the smallest window side drawn above (48): larger is refused, and tested so
    'window_size_range': st.one_of(st.none(), st.tuples(st.integers(16, 32),
                                                        st.integers(32, 48))),
    'output_dims': st.one_of(st.none(), st.tuples(st.integers(16, 64), st.integers(16, 64))),
    'max_nodata_fraction': st.one_of(st.none(), st.sampled_from([0.0, 0.05, 0.2, 0.5])),
    # shapes8 has no videos and no resolutions: these are refused there, unless null
    'time_steps': st.one_of(st.none(), st.integers(1, 4)),
    'time_sampling': st.sampled_from(['contiguous', 'uniform', 'random']),
    'time_span': st.one_of(st.none(), st.integers(1, 6)),
    'resolution': st.one_of(st.none(), st.sampled_from(['1 GSD', 0.5])),
}

FIELD_VALUES['split_by'] = st.sampled_from(['none', 'image', 'video', 'block', 'block'])
_CHANGE = st.sampled_from(sorted(FIELD_VALUES)).flatmap(
    lambda k: st.tuples(st.just(k), FIELD_VALUES[k]))
#: a block split, a few other changes, then a pad: where the explorer's pools once
#: differed from the export's (pad was taken for a read field)
_BLOCK_THEN_PAD = st.tuples(st.lists(_CHANGE, max_size=3),
                            FIELD_VALUES['pad'].filter(lambda p: max(p) > 0)).map(
    lambda t: [('split_by', 'block')] + t[0] + [('pad', t[1])])

#: changes a person makes, one field at a time
CHANGES = st.tuples(st.lists(_CHANGE, min_size=1, max_size=10),
                    st.one_of(st.just([]), _BLOCK_THEN_PAD)).map(lambda t: t[0] + t[1])


def _named(key, value, cats):
    """Category indices drawn by the strategies -> the dataset's category names."""
    if key == 'categories':
        return [cats[i % len(cats)] for i in dict.fromkeys(value)]
    if key == 'class_weights':
        return {cats[i % len(cats)]: w for i, w in value.items()}
    return value


def test_field_values_cover_every_pool_and_read_field():
    assert set(FIELD_VALUES) == SamplingConfig.POOL_FIELDS | SamplingConfig.READ_FIELDS


def _shown_pools(state) -> list:
    table = state.pools.all
    assert table['index'].tolist() == list(range(len(table)))
    return [tuple(r) for r in table[['gid', 'cx', 'cy', 'aid']].astype(float).values.tolist()]


def _sampler_pools(sampler) -> list:
    pos, neg = sampler.regions.pool_tables()
    return [tuple(float(t[c][j]) for c in ('gid', 'cx', 'cy', 'aid'))
            for t in (pos, neg) for j in range(len(t['gid']))]


@pytest.fixture(scope='module')
def shapes_state_args(shapes_copy):
    root, path = shapes_copy
    return dict(dataset=str(path), roots=[root], backend=None)


def _change(state, key, value) -> bool:
    """Set one field as a widget does; a refused change (a new message) must leave the
    config as it was. True when the change was taken."""
    before = state.config_dict()
    serial = (state.message or {}).get('serial')
    setattr(state, key, value)
    if (state.message or {}).get('serial') != serial:      # refused: nothing changed
        assert state.config_dict() == before, (key, value, state.message)
        event('a change refused')
        return False
    return True


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=CHANGES, data=st.data())
def test_explorer_shows_what_the_export_rebuilds(shapes_state_args, changes, data):
    """An explorer changed one field at a time, as a person moves widgets, shows exactly
    the pools (gid, centre, aid per load_item index) and pixels that
    ``CocoSampler.from_config`` of its export gives."""
    from app.state import ExplorerState
    state = ExplorerState(n_pos=6, n_neg=4, **shapes_state_args)
    cats = state.category_names
    for key, drawn in changes:
        value = _named(key, drawn, cats)
        if _change(state, key, value):
            alone = {'class_weights': {'any': 1.0}} if key == 'balance' else {}  # "weights" needs one
            assert state.config_dict()[key] == \
                SamplingConfig(**{key: value}, **alone).to_dict()[key]
    rebuilt = CocoSampler.from_config(SamplingConfig.loads(state.export_yaml()))
    shown = _shown_pools(state)
    assert shown == _sampler_pools(rebuilt)
    assert len(shown) == rebuilt.regions.n_samples
    event(f'pool rows: {"0" if not shown else "1-20" if len(shown) <= 20 else "> 20"}')
    if state.split_by == 'block' and max(state.pad) > 0:
        event('padded block split')
    if shown:
        picks = data.draw(st.lists(st.integers(0, len(shown) - 1), min_size=1, max_size=3,
                                   unique=True), label='items')
        for i in picks:
            np.testing.assert_array_equal(state.sampler.load_item(i)['im'],
                                          rebuilt.load_item(i)['im'], err_msg=str(i))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=12), number=st.floats(allow_nan=False, min_value=1e-6,
                                                     max_value=1e6),
       weights=st.dictionaries(st.text(min_size=1, max_size=6),
                               st.floats(0, 10, allow_nan=False), max_size=3))
def test_link_values_survive_panels_query_parsing(text, number, weights):
    """What app.link writes, read back the way Panel reads a query (parse_qsl, then
    parse_query's number / JSON / bool guessing), is the value it wrote."""
    from urllib.parse import urlencode

    from panel.util import parse_query

    from app.link import decode, encode
    values = {'search': text, 'channels': text or None, 'scale': number,
              'class_weights': weights, 'window_dims': (int(number) + 1, 7), 'n_neg': None}
    query = parse_query('?' + urlencode({k: encode(v) for k, v in values.items()}))
    assert {k: decode(k, query[k]) for k in values} == values


# ------------------------------------------------------------- video + resolution dataset
#: the fields the video property changes (the rest as in FIELD_VALUES)
VIDEO_FIELDS = ('time_steps', 'time_sampling', 'time_span', 'resolution', 'window_dims',
                'pad', 'seed', 'n_pos', 'n_neg', 'scale', 'scale_range', 'mode')
_VIDEO_VALUES = dict(FIELD_VALUES, time_steps=st.one_of(st.none(), st.integers(1, 6)),
                     time_span=st.one_of(st.none(), st.integers(1, 8)),
                     resolution=st.one_of(st.none(), st.sampled_from(['2 GSD', 0.5, '1 mpp'])),
                     window_dims=st.tuples(st.integers(24, 64), st.integers(24, 64)),
                     n_pos=st.integers(0, 6), n_neg=st.integers(0, 4))
_VIDEO_CHANGES = st.lists(st.sampled_from(VIDEO_FIELDS).flatmap(
    lambda k: st.tuples(st.just(k), _VIDEO_VALUES[k])), min_size=1, max_size=8)


@pytest.fixture(scope='module')
def video_state_args(video_res_dset, tmp_path_factory):
    """The video dataset written to a file the explorer may open."""
    root = tmp_path_factory.mktemp('videos')
    dset = video_res_dset.copy()
    bundle = dset.bundle_dpath
    dset.reroot(absolute=True)
    dset.fpath = str(root / 'videos.kwcoco.json')
    dset.dump(dset.fpath)
    return dict(dataset=dset.fpath, roots=[str(root), str(bundle)], backend=None,
                window_dims=(32, 32))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=_VIDEO_CHANGES, data=st.data())
def test_explorer_video_items_are_what_the_export_rebuilds(video_state_args, changes, data):
    """The time and resolution fields changed in the explorer, one at a time: its
    load_item reads the frames and pixels ``from_config`` of its export reads."""
    from app.state import ExplorerState
    state = ExplorerState(n_pos=4, n_neg=2, **video_state_args)
    for key, value in changes:
        _change(state, key, value)
    rebuilt = CocoSampler.from_config(SamplingConfig.loads(state.export_yaml()))
    assert _shown_pools(state) == _sampler_pools(rebuilt)
    n = rebuilt.regions.n_samples
    if state.time_steps is not None:
        event('time_steps')
    if n:
        picks = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2,
                                   unique=True), label='items')
        for i in picks:
            a, b = state.sampler.load_item(i, epoch=1), rebuilt.load_item(i, epoch=1)
            np.testing.assert_array_equal(a['im'], b['im'], err_msg=str(i))
            assert a['params'].get('frame_gids') == b['params'].get('frame_gids')
            if state.time_steps is not None:
                assert np.asarray(a['im']).shape[0] == state.time_steps
