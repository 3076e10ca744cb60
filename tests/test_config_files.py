"""Reading config text and files: hostile YAML / JSON, dataset names and paths, YAML 1.2 floats.

Every case here is a config a person (or a link, or an upload) can hand to
``SamplingConfig.loads`` / ``load``; each must give a short, clear error or the
value the text means.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from sampler_core import CocoSampler
from sampler_core.config import MAX_CONFIG_CHARS, MAX_CONFIG_DEPTH, SamplingConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------
# alias bombs, deep nesting, huge text
# --------------------------------------------------------------------------
def _alias_bomb(key: str) -> str:
    """A "billion laughs" YAML: 9 anchors of 9 aliases each, 9 ** 9 leaves, inside ``key``."""
    names = 'abcdefghi'
    parts = ['&a [1, 1, 1, 1, 1, 1, 1, 1, 1]'] + [
        f'&{n} [' + ', '.join([f'*{prev}'] * 9) + ']' for prev, n in zip(names, names[1:])]
    if key == 'class_weights':   # a mapping of category names to (here) lists
        body = '{' + ', '.join(f'{n}: {p}' for n, p in zip(names, parts)) + '}'
    else:
        body = '[' + ', '.join(parts) + ']'
    return f'version: 1\ndataset: shapes8\n{key}: {body}\n'


#: run in a child process whose address space is capped: an expansion dies there, not here
_CAPPED = textwrap.dedent('''
    import resource, sys
    from sampler_core.config import SamplingConfig
    with open('/proc/self/status') as f:
        size = [int(line.split()[1]) * 1024 for line in f if line.startswith('VmSize')][0]
    cap = size + 400 * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        SamplingConfig.loads(sys.stdin.read())
    except MemoryError:
        print('MemoryError')
    except Exception as ex:
        print(type(ex).__name__, len(str(ex)))
        print(str(ex)[:300])
    else:
        print('loaded')
''')


@pytest.mark.parametrize('key', ['window_dims', 'pad', 'scale', 'split_block', 'class_weights'])
def test_config_alias_bomb_is_refused_before_it_expands(key):
    text = _alias_bomb(key)
    assert len(text) < 700   # a few hundred bytes ...
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1')
    res = subprocess.run([sys.executable, '-c', _CAPPED], input=text, capture_output=True,
                         text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    # ... that expand to 387 million values: refused while composing, with a short message
    name, length = lines[0].split()
    assert name == 'ValueError', res.stdout
    assert int(length) < 400, res.stdout
    assert 'alias' in lines[1] and 'line 3' in lines[1], lines[1]


def test_config_aliases_and_merge_keys_are_refused():
    with pytest.raises(ValueError, match=r'anchors and aliases \(&w / \*w\)'):
        SamplingConfig.loads('window_dims: &w [64, 64]\nsplit_block: *w\n')
    with pytest.raises(ValueError, match='merge keys'):
        SamplingConfig.loads('<<: {seed: 3}\n')


@pytest.mark.parametrize('fmt', ['yaml', 'json'])
@pytest.mark.parametrize('depth', [MAX_CONFIG_DEPTH + 1, 100_000])
def test_config_deep_nesting_is_a_clear_value_error(fmt, depth):
    inner = '[' * depth + ']' * depth
    text = ('{"pad": ' + inner + '}') if fmt == 'json' else f'pad: {inner}\n'
    with pytest.raises(ValueError, match=f'nested deeper than {MAX_CONFIG_DEPTH} levels'):
        SamplingConfig.loads(text)


def test_config_nesting_within_the_bound_loads():
    """Every real config is 2 levels deep: lists and mappings inside the top mapping."""
    text = 'dataset: shapes8\nscale: [0.5, 0.5]\nclass_weights: {star: 2}\n'
    cfg = SamplingConfig.loads(text)
    assert (cfg.scale, cfg.class_weights) == ((0.5, 0.5), {'star': 2})


def test_config_oversized_text_and_file_are_refused(tmp_path):
    text = 'dataset: shapes8\n' + '#' * MAX_CONFIG_CHARS
    with pytest.raises(ValueError, match=f'more than a config may hold \\({MAX_CONFIG_CHARS}'):
        SamplingConfig.loads(text)
    path = tmp_path / 'huge.yaml'
    path.write_text('dataset: shapes8\n' + '#' * (4 * MAX_CONFIG_CHARS + 1))
    with pytest.raises(ValueError, match='huge.yaml'):
        SamplingConfig.load(path)


@pytest.mark.parametrize('kind', ['list', 'mapping', 'text'])
def test_config_error_messages_never_print_a_huge_value(kind):
    big = {'list': list(range(20_000)), 'mapping': {str(i): [i] for i in range(5_000)},
           'text': 'x' * 50_000}[kind]
    for key in SamplingConfig.FIELDS:
        text = json.dumps({'dataset': 'shapes8', key: big})
        try:
            SamplingConfig.loads(text)
        except (KeyError, TypeError, ValueError) as ex:
            msg = str(ex.args[0]) if ex.args else str(ex)
            assert key in msg and len(msg) < 600, (key, len(msg), msg[:200])


# --------------------------------------------------------------------------
# dataset names and relative paths
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['shapes8 ', ' shapes8', 'shapes8\t', 'shapes8\x00',
                                  'shapes8\n', 'sha\x00pes8'])
def test_config_dataset_name_with_spaces_or_controls_is_refused(name):
    text = json.dumps({'dataset': name})
    with pytest.raises(ValueError, match='dataset') as info:
        SamplingConfig.loads(text)
    assert repr(name) in str(info.value)
    # the library refuses it too, instead of generating some other demo
    with pytest.raises(ValueError) as info:
        CocoSampler(name)
    assert repr(name) in str(info.value)


def test_config_relative_dataset_is_relative_to_the_config_file(tmp_path, monkeypatch):
    import kwcoco
    from sampler_core.config import dataset_hash
    data_dir, elsewhere = tmp_path / 'project', tmp_path / 'elsewhere'
    (data_dir / 'configs').mkdir(parents=True)
    elsewhere.mkdir()
    # the config's own dataset (3 images) ...
    mine = kwcoco.CocoDataset.demo('shapes8').copy()
    mine.remove_images(list(mine.imgs)[3:])
    mine.reroot(absolute=True)
    mine.dump(os.fspath(data_dir / 'train.kwcoco.json'))
    # ... and a different file of the same relative name in the working directory
    other = kwcoco.CocoDataset.demo('shapes8').copy()
    other.reroot(absolute=True)
    other.dump(os.fspath(tmp_path / 'train.kwcoco.json'))
    monkeypatch.chdir(elsewhere)
    cfg_path = data_dir / 'configs' / 'cfg.yaml'
    cfg_path.write_text('version: 1\ndataset: ../train.kwcoco.json\nbackend: null\n'
                        'window_dims: [32, 32]\nn_pos: 2\nn_neg: 0\n')
    cfg = SamplingConfig.load(cfg_path)
    assert cfg.dataset == os.fspath(data_dir / 'train.kwcoco.json')
    sampler = CocoSampler.from_config(cfg_path)
    assert sampler.n_images == 3
    assert dataset_hash(sampler.dset) == dataset_hash(mine)
    # a loaded config keeps its meaning when written elsewhere and read from anywhere
    moved = tmp_path / 'moved.yaml'
    moved.write_text(cfg.dumps())
    monkeypatch.chdir(tmp_path)
    assert SamplingConfig.load(moved).dataset == os.fspath(data_dir / 'train.kwcoco.json')
    # loads() without a folder leaves the path as written; demo keys are never paths
    assert SamplingConfig.loads('dataset: ../train.kwcoco.json\n').dataset == \
        '../train.kwcoco.json'
    (data_dir / 'configs' / 'shapes8').write_text('{}')
    demo_cfg = data_dir / 'configs' / 'demo.yaml'
    demo_cfg.write_text('dataset: shapes8\n')
    assert SamplingConfig.load(demo_cfg).dataset == 'shapes8'


# --------------------------------------------------------------------------
# duplicate keys, YAML 1.2 floats, encodings
# --------------------------------------------------------------------------
def test_config_duplicate_keys_are_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"the key 'seed' appears twice \(line 3\)"):
        SamplingConfig.loads('seed: 1\nn_pos: 3\nseed: 2\n')
    with pytest.raises(ValueError, match="the key 'star' appears twice"):
        SamplingConfig.loads('class_weights:\n  star: 1\n  star: 2\n')
    with pytest.raises(ValueError, match="the key 'seed' appears twice"):
        SamplingConfig.loads('{"seed": 1, "n_pos": 3, "seed": 2}')
    with pytest.raises(ValueError, match="the key 'eff' appears twice"):
        SamplingConfig.loads('{"class_weights": {"eff": 1, "eff": 2}}')


@pytest.mark.parametrize('text, value', [
    ('1e-3', 0.001), ('1E-3', 0.001), ('2e-1', 0.2), ('.5', 0.5), ('1.', 1.0), ('0.25', 0.25),
    ('+1e-2', 0.01)])
def test_config_yaml12_floats(text, value):
    cfg = SamplingConfig.loads(f'visible_thresh: {text}\n')
    assert isinstance(cfg.visible_thresh, float) and cfg.visible_thresh == value
    assert SamplingConfig.loads(f'neg_to_pos_ratio: {text}\n').neg_to_pos_ratio == value


def test_config_strings_that_look_like_floats_round_trip():
    cfg = SamplingConfig(categories=['1e5', '2E-3', '.5'], class_weights={'1e5': 2.0})
    text = cfg.dumps('yaml')
    assert "- '1e5'" in text
    assert SamplingConfig.loads(text).to_dict() == cfg.to_dict()


def test_config_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / 'latin1.yaml'
    path.write_bytes('dataset: caf\xe9.kwcoco.json\n'.encode('latin-1'))
    with pytest.raises(ValueError, match='latin1.yaml.*not UTF-8'):
        SamplingConfig.load(path)
    with pytest.raises(ValueError, match='folder'):
        SamplingConfig.load(tmp_path)


@pytest.mark.parametrize('text, key, value', [
    ('seed: 010', 'seed', 10),                 # YAML 1.1: octal 8, silently
    ('seed: 0o17', 'seed', 15),
    ('seed: 0x1F', 'seed', 31),
    ('n_pos: -0', 'n_pos', 0),
    ('categories: [no, on, off, yes, y, n]', 'categories', ['no', 'on', 'off', 'yes', 'y', 'n']),
    ('class_weights: {no: 2, off: 0.5}', 'class_weights', {'no': 2, 'off': 0.5}),
    ('dataset: 2020-01-01', 'dataset', '2020-01-01'),   # YAML 1.1: a date
    ('categories: [1_000]', 'categories', ['1_000']),
    ('n_neg: ~', 'n_neg', None),
    ('n_neg: null', 'n_neg', None),
    ('n_neg:', 'n_neg', None),
    ('pad_value: .NaN', 'pad_value', 'nan'),
    ('neg_to_pos_ratio: TRUE', 'neg_to_pos_ratio', TypeError),
])
def test_config_yaml12_core_schema(text, key, value):
    """Config text is read with the YAML 1.2 core schema: no sexagesimal or 0-prefixed octal
    numbers, no yes/no/on/off booleans, no dates."""
    if value is TypeError:
        with pytest.raises(TypeError, match=key):
            SamplingConfig.loads(text + '\n')
        return
    got = getattr(SamplingConfig.loads(text + '\n'), key)
    if value == 'nan':
        assert got != got
    else:
        assert got == value and type(got) is type(value)


def test_config_sexagesimal_is_not_a_number():
    with pytest.raises((TypeError, ValueError), match="seed.*integer"):   # YAML 1.1: 90
        SamplingConfig.loads('seed: 1:30\n')


@pytest.mark.parametrize('name', ['no', 'On', '010', '09', '0o7', '1:30', '2020-01-01', '1e5',
                                  '.5', '~', 'null', 'true', '0x1F', '-1', '+2', '1_000'])
def test_config_strings_that_look_like_other_values_round_trip(name):
    """What dumps writes, loads (YAML 1.2) and PyYAML's safe_load (YAML 1.1) both read back."""
    import yaml
    cfg = SamplingConfig(categories=[name], class_weights={name: 1.5})
    text = cfg.dumps('yaml')
    assert SamplingConfig.loads(text).to_dict() == cfg.to_dict()
    data = yaml.safe_load(text)
    assert data['categories'] == [name] and data['class_weights'] == {name: 1.5}
