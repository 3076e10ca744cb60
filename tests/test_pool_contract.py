"""The pool contract: ``to_config()`` describes the pools however they were drawn,
requests are bounded by what the dataset can give before any work, and a block
split that cannot hold a window says so.

* A hypothesis property draws pools by every public way (``sampler.preselect``,
  ``sampler.regions.preselect``, ``regions.preselect_grid``, ``apply_config``)
  with random arguments, and checks that ``CocoSampler.from_config`` of
  ``sampler.to_config()`` has identical pool tables, row by row.
* Draws a config cannot hold raise ValueError saying why and what to pass.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sampler_core import CocoSampler, SamplingConfig
from sampler_core.split import Split


@pytest.fixture(scope='module')
def base(shapes_path):
    """A sampler of shapes8 written to this test's own file (8 images of 600 x 600)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sampler = CocoSampler(shapes_path)
        sampler.regions.targets, sampler.regions.isect_index  # build the shared tables once
    return sampler


def _assert_same_pools(a, b):
    for table_a, table_b, kind in zip(a.regions.pool_tables(), b.regions.pool_tables(),
                                      ('positives', 'negatives')):
        assert set(table_a) == set(table_b)
        for key in table_a:
            assert table_a[key].dtype == table_b[key].dtype, (kind, key)
            np.testing.assert_array_equal(table_a[key], table_b[key], err_msg=f'{kind} {key}')


def _rebuild(sampler, subset):
    cfg = sampler.to_config()
    again = SamplingConfig.loads(cfg.dumps())   # through the YAML text, as a file would
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return CocoSampler.from_config(again, subset=subset)


# --------------------------------------------------------------------------- strategies
@st.composite
def splits(draw, window_dims):
    """``(selector_kwargs, subset)`` or ``(None, 'train')``."""
    if not draw(st.booleans()):
        return None, 'train'
    by = draw(st.sampled_from(['image', 'block']))
    ph, pw = draw(st.integers(0, 24)), draw(st.integers(0, 24))
    if by == 'block':
        h, w = {int: (window_dims, window_dims), tuple: window_dims}.get(type(window_dims),
                                                                         (64, 64))
        block = (h + 2 * ph + draw(st.integers(0, 300)), w + 2 * pw + draw(st.integers(0, 300)))
    else:
        block = (1024, 1024)
    split = Split(by, val_fraction=draw(st.sampled_from([0.2, 0.5])),
                  seed=draw(st.integers(0, 2 ** 32 - 1)), block_dims=block)
    return (split, (ph, pw)), draw(st.sampled_from(['train', 'val']))


@st.composite
def negatives_and_categories(draw, cat_ids) -> dict:
    """How many negatives (n_neg, a ratio or the default) and which categories, if any."""
    kw = {}
    neg = draw(st.sampled_from(['n_neg', 'ratio', 'none']))
    if neg == 'n_neg':
        kw['n_neg'] = draw(st.integers(0, 30))
    elif neg == 'ratio':
        kw['neg_to_pos_ratio'] = draw(st.floats(0, 2))
    if draw(st.booleans()):
        kw['category_ids'] = draw(st.lists(st.sampled_from(cat_ids), min_size=1, unique=True))
    return kw


@st.composite
def random_requests(draw, cat_ids):
    window_dims = draw(st.one_of(st.none(), st.just('square'),
                                 st.tuples(st.integers(8, 300), st.integers(8, 300)),
                                 st.integers(8, 300)))
    kw = {'window_dims': window_dims,
          'n_pos': draw(st.one_of(st.none(), st.integers(0, 150))),
          'rng': draw(st.integers(0, 2 ** 32 - 1)),
          'thresh': draw(st.sampled_from([0.0, 0.25, 1.0]))}
    kw.update(draw(negatives_and_categories(cat_ids)))
    kw['balance'] = draw(st.one_of(
        st.none(), st.sampled_from(['none', 'inverse']),
        st.dictionaries(st.sampled_from(cat_ids), st.floats(0.5, 4), min_size=1)))
    split, subset = draw(splits(window_dims if window_dims != 'square' else None))
    way = draw(st.sampled_from(['sampler.preselect', 'regions.preselect']))
    return way, kw, split, subset


@st.composite
def grid_requests(draw, cat_ids):
    window_dims = (draw(st.integers(96, 400)), draw(st.integers(96, 400)))
    overlap = draw(st.sampled_from([0.0, 0.25, 0.5]))
    kw = {'window_dims': window_dims,
          'window_overlap': draw(st.sampled_from([overlap, (overlap, overlap)])),
          'edge': draw(st.sampled_from(['shift', 'pad', 'drop'])),
          'n_pos': draw(st.one_of(st.none(), st.integers(0, 80))),
          'rng': draw(st.integers(0, 2 ** 32 - 1))}
    kw.update(draw(negatives_and_categories(cat_ids)))
    split, subset = draw(splits(window_dims))
    return 'regions.preselect_grid', kw, split, subset


def _draw(sampler, way, kw, split, subset):
    kw = dict(kw)
    if split is not None:
        sel, pad = split
        kw['split'] = sel.select(sampler.dset, subset, pad=pad)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if way == 'sampler.preselect':
            return sampler.preselect(**kw)
        if way == 'regions.preselect':
            return sampler.regions.preselect(**kw)
        return sampler.regions.preselect_grid(**kw)


_SETTINGS = dict(max_examples=30, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(**_SETTINGS)
@given(data=st.data())
def test_pool_contract_to_config_rebuilds_random_pools(base, data):
    """Random pools drawn through the API: from_config(to_config()) has the same pools."""
    cat_ids = sorted(c for c in base.dset.cats if c in set(base.regions.targets['category_id']))
    way, kw, split, subset = data.draw(random_requests(cat_ids))
    sampler = base.fork()
    try:
        _draw(sampler, way, kw, split, subset)
    except ValueError as ex:   # nothing to choose from (split + categories), documented
        assume('no positive targets' not in str(ex))
        raise
    _assert_same_pools(sampler, _rebuild(sampler, subset))


@settings(**_SETTINGS)
@given(data=st.data())
def test_pool_contract_to_config_rebuilds_grid_pools(base, data):
    cat_ids = sorted(c for c in base.dset.cats if c in set(base.regions.targets['category_id']))
    way, kw, split, subset = data.draw(grid_requests(cat_ids))
    sampler = base.fork()
    _draw(sampler, way, kw, split, subset)
    _assert_same_pools(sampler, _rebuild(sampler, subset))


@settings(**_SETTINGS)
@given(mode=st.sampled_from(['random', 'grid']), seed=st.integers(0, 2 ** 32 - 1),
       n_pos=st.one_of(st.none(), st.integers(0, 60)), n_neg=st.integers(0, 20),
       split_by=st.sampled_from(['none', 'image', 'block']),
       subset=st.sampled_from(['train', 'val']),
       window_dims=st.sampled_from([(128, 128), (96, 200), None, 'square']))
def test_pool_contract_to_config_rebuilds_apply_config_pools(base, shapes_path, mode, seed,
                                                             n_pos, n_neg, split_by, subset,
                                                             window_dims):
    assume(mode == 'random' or isinstance(window_dims, tuple))
    assume(split_by != 'none' or subset == 'train')
    cfg = SamplingConfig(dataset=shapes_path, mode=mode, seed=seed, n_pos=n_pos, n_neg=n_neg,
                         window_dims=window_dims, split_by=split_by, split_block=(300, 300),
                         pad=(4, 8), backend=None)
    sampler = base.fork()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sampler.apply_config(cfg, subset=subset)
    _assert_same_pools(sampler, _rebuild(sampler, subset))


def test_pool_contract_issue_example(base):
    """The measured break: regions.preselect(window_dims=(96, 96)) then to_config()."""
    sampler = base.fork()
    sampler.regions.preselect(n_pos=20, n_neg=20, window_dims=(96, 96), rng=0)
    cfg = sampler.to_config()
    assert (cfg.window_dims, cfg.n_pos, cfg.n_neg, cfg.seed) == ((96, 96), 20, 20, 0)
    _assert_same_pools(sampler, _rebuild(sampler, 'train'))


def test_pool_contract_never_drawn_pools(base):
    sampler = base.fork()
    _assert_same_pools(sampler, _rebuild(sampler, 'train'))
    assert sampler.to_config().n_neg == 0


@pytest.mark.parametrize('draw, needle', [
    (lambda s: s.regions.preselect(n_pos=5, n_neg=5, rng=np.random.RandomState(0)),
     'rng=<int seed>'),
    (lambda s: s.regions.preselect(n_pos=5, n_neg=5), 'rng=None'),
    (lambda s: s.regions.preselect_grid((128, 128), window_overlap=(0.1, 0.2), rng=0),
     'one number'),
    (lambda s: s.regions.preselect_grid((None, 128), rng=0), 'window_dims=(None, 128)'),
    (lambda s: s.regions.preselect(n_pos=None, category_ids=[], rng=0), 'category_ids=[]'),
    (lambda s: s.regions.preselect(n_pos=5, rng=0, split=Split('image').select(
        s.dset, 'train', pad=((1, 2), (3, 3)))), 'pad=(ph, pw)'),
    (lambda s: (s.regions.preselect(n_pos=5, n_neg=1, rng=0), s.load_negative(),
                s.load_negative()), 'get_negative()'),
], ids=['random-state', 'rng-none', 'overlap-pair', 'none-window', 'no-categories',
        'asymmetric-pad', 'negative-redrawn'])
def test_pool_contract_inexpressible_draws_say_why(base, draw, needle):
    sampler = base.fork()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        draw(sampler)
    with pytest.raises(ValueError) as info:
        sampler.to_config()
    assert needle in str(info.value)


def test_pool_contract_unused_random_state_is_fine(base):
    """An rng that no draw consumed (every target, no negatives) does not matter."""
    sampler = base.fork()
    sampler.regions.preselect(n_pos=None, n_neg=0, window_dims=(64, 64),
                              rng=np.random.RandomState(3))
    _assert_same_pools(sampler, _rebuild(sampler, 'train'))


def test_pool_contract_config_window_conflict(base, shapes_path):
    """Pools redrawn with another window than the config the sampler reads with."""
    sampler = base.fork()
    sampler.apply_config(SamplingConfig(dataset=shapes_path, window_dims=(64, 64), n_pos=3,
                                        backend=None))
    sampler.preselect(n_pos=3, n_neg=0, window_dims=(32, 32), rng=0)
    with pytest.raises(ValueError, match=r'window_dims=\(32, 32\).*window_dims=\(64, 64\)'):
        sampler.to_config()
    assert sampler.to_config(window_dims=(32, 32)).window_dims == (32, 32)
