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
}


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
def test_read_fields_do_not_change_the_pools(shapes8_dset, split):
    """Every 'read' field changed on its own keeps the pools (a block split with pad
    too: pad itself is a pool field)."""
    base = dict(dataset='shapes8', backend=None, window_dims=(64, 64), pad=(8, 32),
                n_pos=12, n_neg=6, seed=5, **split)
    sampler = CocoSampler(shapes8_dset, backend=None)
    sampler.apply_config(SamplingConfig(**base))
    before = _pools(sampler)
    assert len(before[0]) == 12
    for key, value in READ_CHANGES.items():
        cfg = SamplingConfig(**base, **{key: value})
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
