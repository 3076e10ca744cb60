"""Uploaded files of the explorer: per session, content-addressed, within budgets, released.

An uploaded ``.kwcoco.json`` is written to ``<root>/<sha256 of its bytes>/<file name>``:
two sessions that upload different bytes under the same name get two folders (each
link names its own data), the same bytes are stored once. Every folder records the
sessions that hold it (the one that uploaded it, and any that opened it by a link);
:meth:`UploadStore.release` of the last one deletes the folder and forgets its shared
sampler (:func:`app.pools.forget`). The explorer releases a session's uploads when the
session is destroyed.

Budgets (named constants below) bound one file, one session and the whole server, so
that no user fills the disk or the memory; a refusal names the limit.

A ``.kwcoco.json`` arrives alone, so one whose images are relative paths (to its own
folder) is refused up front with a hint (:func:`check_json_upload`). Such a dataset is
uploaded as a ``.zip`` / ``.tar`` (``.tar.gz``, ``.tgz``) holding the JSON and its images
(:meth:`UploadStore.add_dataset`): it is unpacked into its content folder, every member
checked first (no absolute path, no ``..``, no link or device, at most
:data:`MAX_ARCHIVE_FILES` files and :data:`MAX_EXTRACTED_BYTES` unpacked, which count
against the session's and the server's budgets).

Example:
    >>> import os, tempfile
    >>> store = UploadStore(tempfile.mkdtemp())
    >>> a = store.add('session-a', 'train.kwcoco.json', b'{"images": []}')
    >>> b = store.add('session-b', 'train.kwcoco.json', b'{"images": [], "x": 1}')
    >>> a != b and os.path.basename(a) == os.path.basename(b) == 'train.kwcoco.json'
    True
    >>> store.release('session-a') == [os.path.dirname(a)]
    True
    >>> (os.path.exists(a), os.path.exists(b))
    (False, True)
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Hashable

from app.roots import is_inside

#: largest ``.kwcoco.json`` one upload may be, bytes (decimal MB, as the browser's check counts)
MAX_UPLOAD_BYTES = 20_000_000
#: largest config file one import may be, bytes
MAX_CONFIG_BYTES = 1_000_000
#: uploads one session may hold at once
MAX_SESSION_UPLOADS = 8
#: bytes of uploads one session may hold at once
MAX_SESSION_BYTES = 100_000_000
#: uploads the server holds at once, all sessions together
MAX_SERVER_UPLOADS = 64
#: bytes of uploads the server holds at once, all sessions together
MAX_SERVER_BYTES = 1_000_000_000
#: names of archives an upload may be (a dataset and its images)
ARCHIVE_SUFFIXES = ('.zip', '.tar', '.tar.gz', '.tgz')
#: what the upload widget offers (FilePond checks MIME types: extensions are mapped to
#: them, and the other names browsers give zip / gzip files are listed too)
UPLOAD_FILETYPES = ['.json', '.zip', '.tar', '.gz', '.tgz', 'application/x-zip-compressed',
                    'application/x-gzip', 'application/x-compressed-tar']
#: most files (and folders) one uploaded archive may hold
MAX_ARCHIVE_FILES = 10_000
#: most bytes one uploaded archive may unpack to (charged to the session and server budgets)
MAX_EXTRACTED_BYTES = 100_000_000
#: bytes per websocket message of a chunked upload (below the server's message limit)
UPLOAD_CHUNK_BYTES = 4_000_000
#: the server's websocket message limit, bytes (Bokeh's default; every chunk fits)
WEBSOCKET_MAX_BYTES = 20 * 2**20


def megabytes(n: int) -> str:
    """``n`` bytes as decimal megabytes for messages (``'20 MB'``, ``'0.5 MB'``).

    Example:
        >>> megabytes(20_000_000), megabytes(1_500_000)
        ('20 MB', '1.5 MB')
    """
    return f'{n / 1e6:g} MB'


def check_upload_name(name: str) -> str:
    """The bare file name of an upload; ValueError for a name that is not one.

    Example:
        >>> check_upload_name('train.kwcoco.json')
        'train.kwcoco.json'
        >>> check_upload_name('../x.json')
        Traceback (most recent call last):
        ...
        ValueError: refused: '../x.json' is not a plain file name
    """
    if not isinstance(name, str):
        raise TypeError(f'an upload name must be a string, got {type(name).__name__}')
    bad = (not name or name in ('.', '..') or '/' in name or '\\' in name or '\0' in name
           or len(name.encode('utf8', errors='replace')) > 255)
    if bad:
        raise ValueError(f'refused: {name!r} is not a plain file name')
    return name


def is_archive(name: str) -> bool:
    """Whether an upload's name is one of :data:`ARCHIVE_SUFFIXES`.

    Example:
        >>> is_archive('data.zip'), is_archive('DATA.TAR.GZ'), is_archive('train.kwcoco.json')
        (True, True, False)
    """
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def image_file_names(dataset: dict) -> list[str]:
    """Every file name a kwcoco / COCO dataset (parsed JSON) reads images from: its images'
    ``file_name`` and those of their ``assets`` / ``auxiliary`` entries.

    Example:
        >>> image_file_names({'images': [{'file_name': 'a.png'},
        ...                              {'assets': [{'file_name': '/data/b.tif'}]}]})
        ['a.png', '/data/b.tif']
    """
    names = []
    images = dataset.get('images') if isinstance(dataset, dict) else None
    for img in images if isinstance(images, list) else ():
        if not isinstance(img, dict):
            continue
        entries = [img] + [e for key in ('assets', 'auxiliary')
                           for e in (img.get(key) or []) if isinstance(e, dict)]
        names += [e['file_name'] for e in entries if isinstance(e.get('file_name'), str)]
    return names


def _is_relative(file_name: str) -> bool:
    return not (os.path.isabs(file_name) or '://' in file_name)


def _parse_dataset(name: str, data: bytes) -> dict:
    try:
        dataset = json.loads(data)
    except (ValueError, UnicodeDecodeError) as ex:
        raise ValueError(f'refused: {name} is not a JSON file ({ex})') from None
    if not isinstance(dataset, dict):
        raise ValueError(f'refused: {name} is not a kwcoco / COCO dataset (a JSON object)')
    return dataset


def check_json_upload(name: str, data: bytes) -> None:
    """Refuse a ``.kwcoco.json`` uploaded alone whose images are relative paths: they are
    relative to the folder it came from, which the upload does not bring.

    Raises:
        ValueError: names the first such image and says what to do instead.

    Example:
        >>> check_json_upload('a.json', b'{"images": [{"file_name": "/data/a.png"}]}')
        >>> check_json_upload('b.json', b'{"images": [{"file_name": "img/a.png"}]}')
        Traceback (most recent call last):
        ...
        ValueError: refused: b.json names its images by paths relative to its folder ('img/a.png'), ...
    """
    dataset = _parse_dataset(name, data)
    root = dataset.get('img_root')
    if isinstance(root, str) and os.path.isabs(root):
        return                          # relative names are relative to that folder
    relative = [f for f in image_file_names(dataset) if _is_relative(f)]
    if relative:
        more = f' and {len(relative) - 1} more' if len(relative) > 1 else ''
        raise ValueError(
            f'refused: {name} names its images by paths relative to its folder '
            f'({relative[0]!r}{more}), and an uploaded .json arrives without them: type the '
            f'path of the dataset on the server instead, or upload a .zip / .tar holding the '
            f'.json and its images at those paths (at most {megabytes(MAX_EXTRACTED_BYTES)} '
            f'unpacked)')


def _member_path(archive: str, member: str) -> str:
    """The relative path an archive member is unpacked to; ValueError for one that would
    land outside the folder (absolute, ``..``, a drive, a backslash or a NUL)."""
    parts = [p for p in member.split('/') if p not in ('', '.')]
    bad = (member.startswith('/') or '\\' in member or '\0' in member
           or re.match(r'^[A-Za-z]:', member) or '..' in parts)
    if bad:
        raise ValueError(f'refused: {archive} holds {member!r}, a path outside its folder')
    return '/'.join(parts)


def _archive_members(archive: str, data: bytes, max_files: int, max_bytes: int):
    """``(kind, relative path, size, open)`` of each member (kind 'dir' or 'file'), every
    one checked before anything is unpacked; ValueError naming a refused member or limit."""
    members, total = [], 0

    def add(kind, member, size, opener):
        nonlocal total
        path = _member_path(archive, member)
        if len(members) >= max_files:
            raise ValueError(f'refused: {archive} holds more than {max_files} files, the most '
                             f'an upload may hold')
        total += size
        if total > max_bytes:
            raise ValueError(f'refused: {archive} unpacks to more than {megabytes(max_bytes)}, '
                             f'the most an upload may unpack to')
        if path:
            members.append((kind, path, size, opener))

    buffer = io.BytesIO(data)
    if archive.lower().endswith('.zip'):
        try:
            zf = zipfile.ZipFile(buffer)
        except zipfile.BadZipFile as ex:
            raise ValueError(f'refused: {archive} is not a zip file ({ex})') from None
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode) or (stat.S_IFMT(mode) and not (stat.S_ISREG(mode)
                                                                  or stat.S_ISDIR(mode))):
                raise ValueError(f'refused: {archive} holds {info.filename!r}, which is not a '
                                 f'plain file or folder (a link?)')
            if info.is_dir():
                add('dir', info.filename, 0, None)
            else:
                add('file', info.filename, info.file_size,
                    lambda info=info: zf.open(info))
        return members
    try:
        tf = tarfile.open(fileobj=buffer, mode='r:*')
        for info in tf:                 # headers one by one: a refusal stops reading
            if info.isdir():
                add('dir', info.name, 0, None)
            elif info.isreg():
                add('file', info.name, info.size, lambda info=info: tf.extractfile(info))
            else:
                raise ValueError(f'refused: {archive} holds {info.name!r}, which is not a '
                                 f'plain file or folder (a link or a device)')
    except (tarfile.TarError, EOFError, OSError) as ex:
        raise ValueError(f'refused: {archive} is not a readable tar file ({ex})') from None
    return members


def unpack_archive(archive: str, data: bytes, dest: str | os.PathLike,
                   max_files: int = MAX_ARCHIVE_FILES,
                   max_bytes: int = MAX_EXTRACTED_BYTES) -> int:
    """Unpack a zip / tar upload into the (new, empty) folder ``dest``; return the bytes
    written. Every member is checked before any is written: plain files and folders only,
    each inside ``dest``, at most ``max_files`` of them and ``max_bytes`` together (also
    counted while writing: a header cannot lie). Nothing of the archive's (modes, owners,
    times, links) is applied.

    Raises:
        ValueError: names the refused member or the limit.

    Example:
        >>> import io, os, tempfile, zipfile
        >>> buf = io.BytesIO()
        >>> with zipfile.ZipFile(buf, 'w') as zf:
        ...     zf.writestr('data/a.txt', 'hello')
        >>> dest = tempfile.mkdtemp()
        >>> unpack_archive('x.zip', buf.getvalue(), dest), os.listdir(os.path.join(dest, 'data'))
        (5, ['a.txt'])
    """
    dest = os.fspath(dest)
    members = _archive_members(archive, data, max_files, max_bytes)
    written = 0
    for kind, path, size, opener in members:
        target = os.path.join(dest, *path.split('/'))
        if kind == 'dir':
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            raise ValueError(f'refused: {archive} holds {path!r} twice')
        with opener() as src, open(target, 'xb') as out:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                written += len(chunk)
                if written > max_bytes:
                    raise ValueError(f'refused: {archive} unpacks to more than '
                                     f'{megabytes(max_bytes)}, the most an upload may unpack to')
                out.write(chunk)
    return written


def archive_dataset(archive: str, folder: str) -> str:
    """The dataset file of an unpacked archive: its one ``.kwcoco.json`` (or its one
    ``.json``), whose relative images must all be in ``folder``.

    Raises:
        ValueError: no dataset, several, or an image it names missing from the archive.
    """
    found = sorted(os.path.relpath(os.path.join(d, f), folder)
                   for d, _, files in os.walk(folder) for f in files if f.endswith('.json'))
    kwcoco_files = [f for f in found if f.endswith('.kwcoco.json')]
    candidates = kwcoco_files or found
    if len(candidates) != 1:
        what = 'no .json dataset' if not candidates else f'several datasets {candidates[:5]}'
        raise ValueError(f'refused: {archive} holds {what}; it must hold one .kwcoco.json '
                         f'and its images')
    fpath = os.path.join(folder, candidates[0])
    with open(fpath, 'rb') as f:
        dataset = _parse_dataset(candidates[0], f.read())
    base = os.path.dirname(fpath)
    root = dataset.get('img_root')
    if isinstance(root, str) and root:
        base = os.path.join(base, root)
    for name in image_file_names(dataset):
        if not _is_relative(name):
            continue
        real = os.path.realpath(os.path.join(base, name))
        if not is_inside(real, [folder]) or not os.path.isfile(real):
            raise ValueError(f'refused: {archive} lacks {name!r}, an image its dataset '
                             f'{candidates[0]} names (at that path relative to the .json)')
    return fpath


class UploadStore:
    """Uploaded files under one root folder, held by sessions (see the module docstring).

    Args:
        root: folder of the uploads (created on first use). Default: a new temporary
            folder of this process.
        max_upload_bytes, max_session_uploads, max_session_bytes, max_server_uploads,
        max_server_bytes: the budgets (defaults: the module constants).
    """

    def __init__(self, root: str | os.PathLike | None = None,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES,
                 max_session_uploads: int = MAX_SESSION_UPLOADS,
                 max_session_bytes: int = MAX_SESSION_BYTES,
                 max_server_uploads: int = MAX_SERVER_UPLOADS,
                 max_server_bytes: int = MAX_SERVER_BYTES):
        self._root = None if root is None else os.path.realpath(os.fspath(root))
        self._own_root = root is None    # a temporary root is removed with the uploads
        self.max_upload_bytes = max_upload_bytes
        self.max_session_uploads = max_session_uploads
        self.max_session_bytes = max_session_bytes
        self.max_server_uploads = max_server_uploads
        self.max_server_bytes = max_server_bytes
        self._lock = threading.Lock()
        #: folder (real path) -> {'bytes': n, 'holders': set of owners, 'by': uploader}
        self._folders: dict[str, dict] = {}

    @property
    def root(self) -> str:
        """The real path of the upload folder (a temporary one is made on first use)."""
        with self._lock:
            if self._root is None:
                self._root = os.path.realpath(tempfile.mkdtemp(prefix='sampler-explorer-uploads-'))
            return self._root

    def folder_of(self, path: str | os.PathLike) -> str | None:
        """The upload folder holding ``path`` (a real path), or None when it is not an upload."""
        real = os.path.realpath(os.fspath(path))
        root = self.root
        if not real.startswith(root + os.sep):
            return None
        first = os.path.relpath(real, root).split(os.sep)[0]
        return os.path.join(root, first)

    def usage(self, owner: Hashable | None = None) -> tuple[int, int]:
        """``(count, bytes)`` of the uploads ``owner`` made and still holds (None: the server's)."""
        with self._lock:
            rows = [f for f in self._folders.values() if owner is None or f['by'] == owner]
            return len(rows), sum(f['bytes'] for f in rows)

    def add(self, owner: Hashable, name: str, data: bytes) -> str:
        """Store an upload of ``owner`` (a session); return the path of its file.

        Args:
            owner: the session (any hashable token) that holds the upload.
            name: the uploaded file's name (a bare name, no folder).
            data: its bytes.

        Raises:
            ValueError: a bad name, a file over :attr:`max_upload_bytes`, or a session or
                server budget used up (the message names the limit).
        """
        name = check_upload_name(name)
        size = len(data)
        self._check_size(name, size)
        folder = os.path.join(self.root, hashlib.sha256(data).hexdigest())
        with self._lock:
            self._hold(owner, folder, name, size)
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                os.makedirs(folder, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=folder, prefix='.part-')
                with os.fdopen(fd, 'wb') as f:
                    f.write(data)
                os.replace(tmp, path)   # another session never reads a half-written file
        return path

    def add_dataset(self, owner: Hashable, name: str, data: bytes) -> str:
        """Store an uploaded dataset of ``owner``; return the path of its ``.kwcoco.json``.

        A ``.json`` is stored as it is (:meth:`add`) unless its images are relative paths
        (:func:`check_json_upload`); an archive (:data:`ARCHIVE_SUFFIXES`) holding one
        ``.kwcoco.json`` and its images is checked and unpacked (:func:`unpack_archive`,
        :func:`archive_dataset`) into the folder of its content hash; its unpacked bytes
        count against the session's and the server's budgets.

        Raises:
            ValueError: another kind of file, a refused archive or member, a dataset whose
                images it cannot bring, or a budget used up (each message says which).
        """
        name = check_upload_name(name)
        if name.lower().endswith('.json'):
            check_json_upload(name, data)
            return self.add(owner, name, data)
        if not is_archive(name):
            raise ValueError(f'refused: {name} is neither a .json dataset nor an archive '
                             f'({", ".join(ARCHIVE_SUFFIXES)}) holding one and its images')
        self._check_size(name, len(data))
        limit = min(MAX_EXTRACTED_BYTES, self.max_session_bytes)
        members = _archive_members(name, data, MAX_ARCHIVE_FILES, limit)   # before any write
        size = max(len(data), sum(m[2] for m in members))
        root = self.root
        folder = os.path.join(root, hashlib.sha256(data).hexdigest())
        with self._lock:
            new = self._hold(owner, folder, name, size)
            try:
                if new or not os.path.isdir(folder):
                    os.makedirs(root, exist_ok=True)
                    part = tempfile.mkdtemp(dir=root, prefix='.part-')
                    try:
                        unpack_archive(name, data, part, MAX_ARCHIVE_FILES, limit)
                        archive_dataset(name, part)
                        if os.path.isdir(folder):
                            shutil.rmtree(folder)
                        os.replace(part, folder)   # nobody reads a half-unpacked folder
                    finally:
                        shutil.rmtree(part, ignore_errors=True)
                return archive_dataset(name, folder)
            except Exception:
                if new:
                    del self._folders[folder]
                raise

    def _check_size(self, name: str, size: int) -> None:
        if size > self.max_upload_bytes:
            raise ValueError(f'refused: {name} is {megabytes(size)}, larger than the upload '
                             f'limit of {megabytes(self.max_upload_bytes)}')

    def _hold(self, owner: Hashable, folder: str, name: str, size: int) -> bool:
        """Record that ``owner`` holds the upload ``folder`` of ``size`` bytes (under the
        lock); return whether it is new. ValueError when a budget would be passed."""
        entry = self._folders.get(folder)
        new = entry is None
        if entry is None:
            mine = [f for f in self._folders.values() if f['by'] == owner]
            if len(mine) >= self.max_session_uploads:
                raise ValueError(
                    f'refused: this session holds {len(mine)} uploads, the most one session '
                    f'may hold ({self.max_session_uploads}); open a new page to start afresh')
            if sum(f['bytes'] for f in mine) + size > self.max_session_bytes:
                raise ValueError(
                    f'refused: {name} would bring this session\'s uploads over '
                    f'{megabytes(self.max_session_bytes)}, the most one session may hold')
            if len(self._folders) >= self.max_server_uploads:
                raise ValueError(
                    f'refused: the server holds {len(self._folders)} uploads, its limit '
                    f'({self.max_server_uploads}); try again when other sessions have closed')
            if sum(f['bytes'] for f in self._folders.values()) + size > self.max_server_bytes:
                raise ValueError(
                    f'refused: {name} would bring the server\'s uploads over '
                    f'{megabytes(self.max_server_bytes)}, its limit; try again when other '
                    f'sessions have closed')
            entry = self._folders[folder] = {'bytes': size, 'holders': set(), 'by': owner}
        entry['holders'].add(owner)
        return new

    def acquire(self, owner: Hashable, path: str | os.PathLike) -> bool:
        """Record that ``owner`` uses the upload holding ``path`` (a session opened it by a
        link); return whether ``path`` is an upload of this store."""
        folder = self.folder_of(path)
        with self._lock:
            entry = self._folders.get(folder) if folder else None
            if entry is None:
                return False
            entry['holders'].add(owner)
            return True

    def release(self, owner: Hashable) -> list[str]:
        """``owner`` (a closed session) holds none of its uploads any more: delete the
        folders nobody else holds and forget their shared samplers.

        Returns:
            the deleted folders.
        """
        with self._lock:
            gone = []
            for folder, entry in list(self._folders.items()):
                entry['holders'].discard(owner)
                if not entry['holders']:
                    del self._folders[folder]
                    gone.append(folder)
        from app.pools import forget
        for folder in gone:
            shutil.rmtree(folder, ignore_errors=True)
            forget(folder)
        return gone

    def remove_all(self) -> None:
        """Delete every upload and the root folder (the server stops)."""
        with self._lock:
            folders, self._folders = list(self._folders), {}
            root = self._root
        from app.pools import forget
        for folder in folders:
            forget(folder)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        if root is not None and self._own_root:
            shutil.rmtree(root, ignore_errors=True)


_STORE: UploadStore | None = None
_STORE_LOCK = threading.Lock()


def server_store(root: str | os.PathLike | None = None) -> UploadStore:
    """The upload store of this process (made on first call; ``root`` applies then only).

    Its uploads (and a temporary root) are removed when the process exits.
    """
    global _STORE
    with _STORE_LOCK:
        if _STORE is None:
            import atexit
            _STORE = UploadStore(root)
            atexit.register(_STORE.remove_all)
        return _STORE
