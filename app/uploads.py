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
import os
import shutil
import tempfile
import threading
from collections.abc import Hashable

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
        if size > self.max_upload_bytes:
            raise ValueError(f'refused: {name} is {megabytes(size)}, larger than the upload '
                             f'limit of {megabytes(self.max_upload_bytes)}')
        digest = hashlib.sha256(data).hexdigest()
        folder = os.path.join(self.root, digest)
        with self._lock:
            entry = self._folders.get(folder)
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
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                os.makedirs(folder, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=folder, prefix='.part-')
                with os.fdopen(fd, 'wb') as f:
                    f.write(data)
                os.replace(tmp, path)   # another session never reads a half-written file
        return path

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
