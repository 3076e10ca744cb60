"""Fuzzing SamplingConfig: every malformed config gives a clear error naming the key.

"Clear" means: a KeyError / TypeError / ValueError whose message names a
config key, raised from ``sampler_core/config.py`` itself (not from deep inside
param, yaml or numpy).
"""
import os
import traceback

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sampler_core.config import SamplingConfig

FIELDS = SamplingConfig.FIELDS
CLEAR = (KeyError, TypeError, ValueError)

#: any JSON / YAML-like value (YAML also gives dates, but those are rare in configs)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=8), st.integers()),
                                            inner, max_size=4)),
    max_leaves=8,
)
#: values close to valid ones, so the fuzz also reaches the range checks
near_valid = st.one_of(
    st.lists(st.integers(min_value=-3, max_value=5000), min_size=0, max_size=3),
    st.lists(st.floats(min_value=-10, max_value=10), min_size=2, max_size=2),
    st.sampled_from(['none', 'inverse', 'weights', 'image', 'video', 'block', 'grid', 'random',
                     'shift', 'pad', 'drop', 'npy', 'constant', 'reflect', 'boxes', 'star']),
    st.lists(st.sampled_from(['boxes', 'segmentation', 'keypoints', 'masks']), max_size=3),
    st.dictionaries(st.sampled_from(['star', 'eff', 'superstar', '']),
                    st.one_of(st.floats(min_value=-2, max_value=5), st.text(max_size=2)),
                    max_size=3),
    st.floats(min_value=-0.5, max_value=1.5), st.integers(min_value=-5, max_value=2 ** 33),
)
any_value = st.one_of(values, near_valid)
keys = st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=10))

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _check_clear(ex: BaseException, candidates) -> None:
    """The error is of a clear type, names one of ``candidates``, and is raised by config.py."""
    assert isinstance(ex, CLEAR), f'{type(ex).__name__}: {ex}'
    msg = str(ex.args[0]) if isinstance(ex, KeyError) and ex.args else str(ex)
    names = [str(k) for k in candidates] + list(FIELDS)
    assert any(name in msg for name in names if name), msg
    last = traceback.extract_tb(ex.__traceback__)[-1]
    here = os.path.join('sampler_core', 'config.py')
    assert last.filename.endswith(here), f'raised deep inside {last.filename}: {msg}'


def _load(data):
    try:
        return SamplingConfig.from_dict(data), None
    except BaseException as ex:  # noqa: B902 - anything else fails the test below
        return None, ex


def _roundtrip(cfg: SamplingConfig) -> None:
    """A config that loaded writes a file that loads back equal."""
    for fmt in ('yaml', 'json'):
        again = SamplingConfig.loads(cfg.dumps(fmt))
        assert again.to_dict() == cfg.to_dict()


@FUZZ
@given(data=st.dictionaries(keys, any_value, max_size=6))
def test_config_fuzz_random_dicts(data):
    cfg, ex = _load(data)
    if ex is None:
        _roundtrip(cfg)
    else:
        _check_clear(ex, list(data))


@FUZZ
@given(key=st.sampled_from(FIELDS), value=any_value)
def test_config_fuzz_one_key(key, value):
    cfg, ex = _load({key: value})
    if ex is None:
        _roundtrip(cfg)
    else:
        _check_clear(ex, [key])
        msg = str(ex.args[0]) if isinstance(ex, KeyError) and ex.args else str(ex)
        # an error about a single key names that key (cross-field rules name both)
        assert key in msg, msg


@FUZZ
@given(text=st.text(max_size=80))
def test_config_fuzz_random_text(text):
    try:
        cfg = SamplingConfig.loads(text)
    except BaseException as ex:  # noqa: B902
        _check_clear(ex, ['YAML', 'mapping'])
    else:
        _roundtrip(cfg)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(FIELDS), any_value, max_size=5),
       cut=st.integers(min_value=0, max_value=400))
def test_config_fuzz_mangled_yaml(data, cut):
    """YAML of random values, then cut at a random point (a truncated file)."""
    text = yaml.safe_dump(data, sort_keys=False)[:cut]
    try:
        cfg = SamplingConfig.loads(text)
    except BaseException as ex:  # noqa: B902
        _check_clear(ex, list(data) + ['YAML', 'mapping'])
    else:
        _roundtrip(cfg)


@pytest.mark.parametrize('data, key', [
    ({1: 2}, '1'),
    ({'balance': 'weights'}, 'class_weights'),
    ({'balance': 'weights', 'class_weights': {'star': 0}}, 'class_weights'),
    ({'class_weights': {'star': -1}}, 'class_weights'),
    ({'class_weights': {'star': 'x'}}, 'class_weights'),
    ({'class_weights': {3: 1.0}}, 'class_weights'),
    ({'class_weights': ['star']}, 'class_weights'),
    ({'split_by': 'tile'}, 'split_by'),
    ({'val_fraction': 1.5}, 'val_fraction'),
    ({'split_block': [0, 64]}, 'split_block'),
    ({'split_block': [64.5, 64]}, 'split_block'),
    ({'split_seed': -1}, 'split_seed'),
    ({'seed': 2 ** 40}, 'seed'),
    ({'seed': True}, 'seed'),
    ({'n_pos': False}, 'n_pos'),
    ({'mode': 'grid', 'window_dims': None}, 'window_dims'),
    ({'mode': 'sliding'}, 'mode'),
    ({'grid_overlap': 1.0}, 'grid_overlap'),
    ({'grid_edge': 'wrap'}, 'grid_edge'),
    ({'neg_to_pos_ratio': float('inf')}, 'neg_to_pos_ratio'),
    ({'dataset': ''}, 'dataset'),
    ({'channels': ''}, 'channels'),
    ({'version': 1.0}, 'version'),
    ({'scale': 0}, 'scale'),
    ({'scale': [1, 'x']}, 'scale'),
    ({'scale': [1, 2, 3]}, 'scale'),
    ({'scale': float('nan')}, 'scale'),
    ({'version': 0}, 'version'),
], ids=lambda v: str(v)[:40])
def test_config_fuzz_named_cases(data, key):
    cfg, ex = _load(data)
    assert ex is not None, f'{data} should not load'
    _check_clear(ex, [key])
    msg = str(ex.args[0]) if isinstance(ex, KeyError) and ex.args else str(ex)
    assert key in msg


# --------------------------------------------------------------------------
# files of the first release (before balance / split / grid) still load
# --------------------------------------------------------------------------
MINIMAL_V1 = 'version: 1\ndataset: shapes8\n'

FIRST_RELEASE_V1 = """\
# sampler-explorer sampling config; load with SamplingConfig.load(path)
version: 1
dataset: shapes8
dataset_hash: null
backend: null
workdir: null
window_dims:
- 64
- 64
pad:
- 4
- 4
pad_mode: constant
pad_value: 0
channels: null
visible_thresh: 0.0
with_annots:
- boxes
- segmentation
- keypoints
categories: []
n_pos: 5
n_neg: 3
neg_to_pos_ratio: 1.0
neg_overlap: 0.0
seed: 2
"""


@pytest.mark.parametrize('text', [MINIMAL_V1, FIRST_RELEASE_V1], ids=['minimal', 'first-release'])
def test_config_old_version_files_load(tmp_path, text):
    path = tmp_path / 'old.yaml'
    path.write_text(text)
    cfg = SamplingConfig.load(path)
    assert cfg.version == 2   # loads as the current version, meaning the same
    assert (cfg.mode, cfg.balance, cfg.split_by) == ('random', 'none', 'none')
    assert cfg.class_weights == {}
    # the new fields are written back, and the file loads again unchanged
    again = SamplingConfig.loads(cfg.dumps())
    assert again.to_dict() == cfg.to_dict()
    assert 'split_by: none' in cfg.dumps()


def test_config_old_file_samples_as_before():
    """The first-release file builds the same pools as preselect did before balance/split."""
    from sampler_core import CocoSampler
    cfg = SamplingConfig.loads(FIRST_RELEASE_V1)
    sampler = CocoSampler.from_config(cfg)
    plain = CocoSampler.demo('shapes8')
    plain.regions.preselect(n_pos=5, n_neg=3, window_dims=(64, 64), rng=2)
    for i in range(8):
        assert sampler.regions.get_item(i) == plain.regions.get_item(i)
