"""Uploading a dataset: a .kwcoco.json alone (refused when its images are relative paths),
or a zip / tar of the JSON and its images, checked member by member before unpacking."""
from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import zipfile

import numpy as np
import pytest

from app import uploads as upl


def tiny_dataset(folder) -> dict:
    """Two PNGs under ``folder/images`` and a dataset naming them relative to ``folder``."""
    import kwimage
    os.makedirs(os.path.join(folder, 'images'), exist_ok=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    for gid in (1, 2):
        name = f'images/im{gid}.png'
        kwimage.imwrite(os.path.join(folder, name),
                        rng.integers(0, 255, (40 + gid, 60, 3), dtype=np.uint8))
        images.append({'id': gid, 'file_name': name, 'width': 60, 'height': 40 + gid})
        anns.append({'id': gid, 'image_id': gid, 'category_id': 1, 'bbox': [5, 5, 20, 10]})
    return {'images': images, 'annotations': anns, 'categories': [{'id': 1, 'name': 'thing'}]}


def archive_of(kind: str, members: list) -> bytes:
    """A zip / tar / tar.gz of ``(name, bytes)`` members."""
    buf = io.BytesIO()
    if kind == 'zip':
        with zipfile.ZipFile(buf, 'w') as zf:
            for name, data in members:
                zf.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode='w:gz' if kind == 'tar.gz' else 'w') as tf:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def dataset_members(folder, dataset, prefix='') -> list:
    files = [(prefix + 'train.kwcoco.json', json.dumps(dataset).encode())]
    for img in dataset['images']:
        with open(os.path.join(folder, img['file_name']), 'rb') as f:
            files.append((prefix + img['file_name'], f.read()))
    return files


def assert_nothing_kept(store):
    assert store.usage() == (0, 0)
    # no folder, no half-unpacked part
    assert not os.path.exists(store.root) or os.listdir(store.root) == []


def test_json_with_relative_images_is_refused_with_a_hint(tmp_path):
    """The tour: such an upload copied the JSON only, then showed a black overview and a
    row of 'unreadable' buttons."""
    store = upl.UploadStore(tmp_path / 'uploads')
    dataset = tiny_dataset(tmp_path / 'src')
    with pytest.raises(ValueError) as info:
        store.add_dataset('s', 'train.kwcoco.json', json.dumps(dataset).encode())
    text = str(info.value)
    assert "'images/im1.png' and 1 more" in text
    assert 'type the path of the dataset' in text and '.zip / .tar' in text
    assert_nothing_kept(store)
    # absolute image paths (or an absolute img_root) arrive as before
    for img in dataset['images']:
        img['file_name'] = str(tmp_path / 'src' / img['file_name'])
    path = store.add_dataset('s', 'abs.kwcoco.json', json.dumps(dataset).encode())
    assert json.loads(open(path).read()) == dataset


def test_explorer_refuses_a_json_with_relative_images_before_opening_it(tmp_path):
    from app.layout import Explorer
    e = Explorer('shapes8', backend=None, uploads=upl.UploadStore(tmp_path / 'up'))
    dataset = tiny_dataset(tmp_path / 'src')
    e.upload.value = {'train.kwcoco.json': json.dumps(dataset).encode()}
    assert e.state.dataset == 'shapes8'                      # still the demo
    assert 'relative to its folder' in e.state.message['text']
    assert e.alert.visible and 'upload a .zip / .tar' in e.state.message['text']


@pytest.mark.parametrize('kind', ['zip', 'tar', 'tar.gz'])
def test_archive_of_a_dataset_and_its_images_opens_with_its_pixels(tmp_path, kind):
    import kwimage

    from app.state import ExplorerState
    src = tmp_path / 'src'
    dataset = tiny_dataset(src)
    data = archive_of(kind, dataset_members(src, dataset, prefix='set/'))
    store = upl.UploadStore(tmp_path / 'uploads')
    path = store.add_dataset('s', f'set.{kind}', data)
    assert path == os.path.join(store.root, __import__('hashlib').sha256(data).hexdigest(),
                                'set', 'train.kwcoco.json')
    unpacked = sum(len(d) for _, d in dataset_members(src, dataset))
    assert store.usage('s') == (1, max(unpacked, len(data)))   # the larger is charged
    state = ExplorerState(dataset=path, roots=[store.root], backend=None, n_pos=2)
    for gid in (1, 2):
        want = kwimage.imread(str(src / f'images/im{gid}.png'))
        got = state.sampler.load_sample({'gid': gid, 'cx': 30, 'cy': 20,
                                         'window_dims': (40, 60)})['im']
        assert (got == want[:40]).all()
    # the same archive from another session: the same folder, held twice, released last
    assert store.add_dataset('t', 'again.zip' if kind == 'zip' else f'again.{kind}', data) == path
    store.release('s')
    assert os.path.isfile(path)
    store.release('t')
    assert_nothing_kept(store)


def _symlink_zip(target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        info = zipfile.ZipInfo('images/im1.png')
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return buf.getvalue()


def _tar_with(member: tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tf:
        tf.addfile(member)
    return buf.getvalue()


def _link(kind, name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize('name, data, refused', [
    ('up.zip', archive_of('zip', [('../x.json', b'{}')]), "'../x.json', a path outside"),
    ('up.tar', archive_of('tar', [('a/../../x.json', b'{}')]), "'a/../../x.json', a path outside"),
    ('up.zip', archive_of('zip', [('/tmp/abs-upload.json', b'{}')]),
     "'/tmp/abs-upload.json', a path outside"),
    ('up.tar', archive_of('tar', [('/tmp/abs-upload.json', b'{}')]),
     "'/tmp/abs-upload.json', a path outside"),
    ('up.zip', archive_of('zip', [('C:/x.json', b'{}')]), "'C:/x.json', a path outside"),
    ('up.zip', archive_of('zip', [('a\\..\\..\\x.json', b'{}')]), 'a path outside'),
    ('up.zip', _symlink_zip('/etc/passwd'), "'images/im1.png', which is not a plain file"),
    ('up.tar', _tar_with(_link(tarfile.SYMTYPE, 'images/im1.png', '/etc/passwd')),
     "'images/im1.png', which is not a plain file"),
    ('up.tar', _tar_with(_link(tarfile.LNKTYPE, 'images/im1.png', '/etc/passwd')),
     "'images/im1.png', which is not a plain file"),
    ('up.tar', _tar_with(_link(tarfile.CHRTYPE, 'dev', '')), "'dev', which is not a plain"),
    ('up.zip', b'PK\x05\x06 not really', 'is not a zip file'),
    ('up.tar.gz', b'\x1f\x8b garbage', 'is not a readable tar file'),
    ('up.exe', b'MZ', 'neither a .json dataset nor an archive'),
], ids=['zip-dotdot', 'tar-dotdot', 'zip-absolute', 'tar-absolute', 'zip-drive',
        'zip-backslash', 'zip-symlink', 'tar-symlink', 'tar-hardlink', 'tar-device',
        'bad-zip', 'bad-tar', 'other-file'])
def test_malicious_archives_are_refused_before_anything_is_written(tmp_path, name, data, refused):
    store = upl.UploadStore(tmp_path / 'uploads')
    with pytest.raises(ValueError) as info:
        store.add_dataset('s', name, data)
    assert refused in str(info.value) and str(info.value).startswith('refused: ')
    assert_nothing_kept(store)
    assert not os.path.exists(tmp_path / 'x.json') and not os.path.exists('/tmp/abs-upload.json')


def test_archive_limits_files_and_unpacked_bytes(tmp_path, monkeypatch):
    src = tmp_path / 'src'
    dataset = tiny_dataset(src)
    members = dataset_members(src, dataset)
    store = upl.UploadStore(tmp_path / 'uploads')
    monkeypatch.setattr(upl, 'MAX_ARCHIVE_FILES', len(members) - 1)
    with pytest.raises(ValueError, match=f'more than {len(members) - 1} files'):
        store.add_dataset('s', 'many.zip', archive_of('zip', members))
    assert_nothing_kept(store)
    monkeypatch.setattr(upl, 'MAX_ARCHIVE_FILES', len(members))
    total = sum(len(d) for _, d in members)
    monkeypatch.setattr(upl, 'MAX_EXTRACTED_BYTES', total - 1)
    for kind in ('zip', 'tar.gz'):
        with pytest.raises(ValueError, match=r'unpacks to more than'):
            store.add_dataset('s', f'big.{kind}', archive_of(kind, members))
        assert_nothing_kept(store)
    # a zip bomb: 50 MB of zeros in a few kB, refused from its header, never inflated
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, 'w', compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr('train.kwcoco.json', b'0' * 50_000_000)
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(ValueError, match=r'unpacks to more than'):
        store.add_dataset('s', 'bomb.zip', bomb.getvalue())
    assert_nothing_kept(store)
    # the unpacked bytes count against the session's budget
    monkeypatch.setattr(upl, 'MAX_EXTRACTED_BYTES', total)
    small = upl.UploadStore(tmp_path / 'small', max_session_bytes=total - 1)
    with pytest.raises(ValueError, match='unpacks to more than'):
        small.add_dataset('s', 'set.zip', archive_of('zip', members))
    assert_nothing_kept(small)


@pytest.mark.parametrize('change, refused', [
    (lambda d: d['images'][0].update(file_name='images/missing.png'), "lacks 'images/missing.png'"),
    (lambda d: d['images'][0].update(file_name='../outside.png'), "lacks '../outside.png'"),
    (lambda d: None, None),
], ids=['missing-image', 'image-outside', 'complete'])
def test_archive_dataset_must_bring_every_image(tmp_path, change, refused):
    src = tmp_path / 'src'
    dataset = tiny_dataset(src)
    members = dataset_members(src, dataset)
    (tmp_path / 'uploads').mkdir()
    (tmp_path / 'outside.png').write_bytes(members[1][1])     # beside the upload folder
    change(dataset)
    members[0] = ('train.kwcoco.json', json.dumps(dataset).encode())
    store = upl.UploadStore(tmp_path / 'uploads')
    if refused is None:
        assert os.path.isfile(store.add_dataset('s', 'set.zip', archive_of('zip', members)))
        return
    with pytest.raises(ValueError, match=refused):
        store.add_dataset('s', 'set.zip', archive_of('zip', members))
    assert_nothing_kept(store)


@pytest.mark.parametrize('names, refused', [
    (['a.png'], 'holds no .json dataset'),
    (['a.kwcoco.json', 'b.kwcoco.json'], 'several datasets'),
], ids=['none', 'several'])
def test_archive_must_hold_one_dataset(tmp_path, names, refused):
    store = upl.UploadStore(tmp_path / 'uploads')
    members = [(n, b'{"images": []}') for n in names]
    with pytest.raises(ValueError, match=refused):
        store.add_dataset('s', 'set.tar', archive_of('tar', members))
    assert_nothing_kept(store)
