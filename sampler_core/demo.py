"""The demo datasets: one registry for the library and the explorer.

A demo key (``shapes8``, ``shapes32``, ``vidshapes3-frames6``, ``large2``) names
a dataset generated locally, on first use, into this project's own folder::

    $SAMPLER_EXPLORER_DEMOS/<key>-v<N>/data.kwcoco.json      (when the variable is set)
    $XDG_CACHE_HOME/sampler-explorer/demos/<key>-v<N>/...    (else; ~/.cache by default)

``N`` is the demo's generation version: it changes when the generated content
would, so a folder always holds one content. A demo is

- deterministic: generating it again, in any process and into any folder, gives
  the same annotations, the same image bytes and the same content hash (kwcoco's
  generators also draw from numpy's global random state, which is fixed while they
  run; image paths are stored relative to the folder);
- written atomically: generated into a temporary folder beside its final one,
  then renamed into place; a process that finds another one generating the
  same demo waits for it (a lock file ``.<key>-v<N>.lock`` beside the folder)
  and uses its folder; without that lock, the first rename wins and the others
  use the winner's folder;
- never rewritten under a reader: a present, valid folder is reused as it is; an
  invalid one (a file deleted by hand) is renamed aside before a new one is
  published, so a process reading the old files keeps reading them.

So a config exported on a demo (``dataset: shapes8`` plus its ``dataset_hash``)
rebuilds the same pools in another process: :meth:`CocoSampler.from_config`,
``CocoSampler('shapes8')`` and the explorer all open demos through
:func:`load_demo`.

Example:
    >>> from sampler_core.demo import DEMOS, is_demo_key, load_demo
    >>> sorted(DEMOS)
    ['large2', 'shapes32', 'shapes8', 'vidshapes3-frames6']
    >>> is_demo_key('shapes8'), is_demo_key('shapes8 '), is_demo_key('data.kwcoco.json')
    (True, False, False)
    >>> dset = load_demo('shapes8')
    >>> dset.n_images, dset.fpath.endswith('shapes8-v1/data.kwcoco.json')
    (8, True)
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

#: environment variable naming the demo folder (overrides the default)
DEMO_DIR_ENV = 'SAMPLER_EXPLORER_DEMOS'
#: file name of a demo's dataset inside its folder
DATASET_FILE = 'data.kwcoco.json'
#: seed of numpy's / Python's global random state while kwcoco generates a demo
GENERATION_SEED = 0


@dataclass(frozen=True)
class Demo:
    """One demo dataset.

    Attributes:
        key: the name used in configs and in the explorer's demo list.
        description: one line for people choosing a demo.
        version: bumped whenever :attr:`generate` would write other content.
        generate: ``generate(folder)`` writes :data:`DATASET_FILE` (image paths
            relative to ``folder``) and its images into ``folder``.
    """

    key: str
    description: str
    version: int
    generate: Callable[[Path], None]

    @property
    def folder_name(self) -> str:
        """``<key>-v<version>``."""
        return f'{self.key}-v{self.version}'


def demo_root() -> Path:
    """The folder holding the demo folders (read from the environment on each call).

    ``$SAMPLER_EXPLORER_DEMOS`` if set, else
    ``$XDG_CACHE_HOME/sampler-explorer/demos`` (``~/.cache`` when
    ``XDG_CACHE_HOME`` is not set).

    Example:
        >>> import os
        >>> saved = os.environ.pop(DEMO_DIR_ENV, None)
        >>> os.environ[DEMO_DIR_ENV] = '/tmp/my-demos'
        >>> str(demo_root())
        '/tmp/my-demos'
        >>> del os.environ[DEMO_DIR_ENV]
        >>> demo_root().parts[-2:]
        ('sampler-explorer', 'demos')
        >>> if saved is not None:
        ...     os.environ[DEMO_DIR_ENV] = saved
    """
    override = os.environ.get(DEMO_DIR_ENV)
    if override:
        return Path(override).expanduser()
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    return Path(cache) / 'sampler-explorer' / 'demos'


# ---------------------------------------------------------------- generators
#: one generation at a time in a process: it sets numpy's global random state
_GENERATE_LOCK = threading.RLock()


def _generate_kwcoco(key: str, **kwargs) -> Callable[[Path], None]:
    """A generator writing ``kwcoco.CocoDataset.demo(key, **kwargs)`` into a folder."""

    def generate(folder: Path) -> None:
        import kwcoco
        fpath = folder / DATASET_FILE
        # vidshapes derives its default seed from its arguments, the output path
        # included: give it one
        where = dict(bundle_dpath=os.fspath(folder)) if key.startswith('shapes') else \
            dict(fpath=os.fspath(fpath), rng=GENERATION_SEED)
        # kwcoco's shape generators draw categories / tracks from numpy's global
        # random state as well as from their seed: fix it while they run
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            np.random.seed(GENERATION_SEED)
            random.seed(GENERATION_SEED)
            dset = kwcoco.CocoDataset.demo(key, use_cache=False, verbose=0, **where, **kwargs)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        # image paths relative to the folder, so the content (and its hash) does not
        # depend on where the demo lives
        for img in dset.dataset['images']:
            for obj in [img] + list(img.get('auxiliary') or []) + list(img.get('assets') or []):
                name = obj.get('file_name')
                if name and os.path.isabs(name):
                    obj['file_name'] = os.path.relpath(name, folder)
        shutil.rmtree(folder / '_cache', ignore_errors=True)
        _write_json_atomic(fpath, dset.dataset)

    return generate


def _draw_large(folder: Path, n_images: int, width: int, height: int, n_annots: int,
                seed: int) -> None:
    """Draw ``n_images`` PNGs of ``width`` x ``height`` with ``n_annots`` polygons each."""
    import cv2
    (folder / 'images').mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    cats = [{'id': 1, 'name': 'blob'}, {'id': 2, 'name': 'square'}, {'id': 3, 'name': 'spot'}]
    images, anns = [], []
    for gid in range(1, n_images + 1):
        coarse = rng.rand(height // 400 + 2, width // 400 + 2, 3).astype(np.float32)
        img = (60 + 150 * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC))
        img = np.clip(img, 0, 255).astype(np.uint8)
        # a grid so that zooming in shows fine detail
        img[::50, :] = 255
        img[:, ::50] = 255
        for _ in range(n_annots):
            cid = int(rng.randint(1, 4))
            r = float(rng.uniform(20, 200))
            cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
            n = 12
            ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
            rad = r * (0.6 + 0.4 * rng.rand(n)) if cid == 1 else np.full(n, r)
            if cid == 2:
                ang = np.array([0.25, 0.75, 1.25, 1.75]) * np.pi
                rad = np.full(4, r)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1).round(1)
            color = tuple(int(v) for v in rng.randint(0, 256, 3))
            cv2.fillPoly(img, [pts.round().astype(np.int32)], color)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            anns.append({'id': len(anns) + 1, 'image_id': gid, 'category_id': cid,
                         'bbox': [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                         'area': float((x1 - x0) * (y1 - y0)),
                         'segmentation': [pts.ravel().tolist()]})
        name = f'images/large_{gid:02d}.png'
        cv2.imwrite(os.fspath(folder / name), img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
        images.append({'id': gid, 'file_name': name, 'width': width, 'height': height})
    _write_json_atomic(folder / DATASET_FILE,
                       {'categories': cats, 'images': images, 'annotations': anns})


def _large(n_images: int, width: int, height: int, n_annots: int,
           seed: int) -> Callable[[Path], None]:
    return lambda folder: _draw_large(folder, n_images, width, height, n_annots, seed)


#: demo key -> :class:`Demo` (the explorer lists them in this order; the first is the default)
DEMOS: dict[str, Demo] = {demo.key: demo for demo in [
    Demo('shapes8', 'kwcoco shapes: 8 images 600x600, boxes, polygons, keypoints', 1,
         _generate_kwcoco('shapes8')),
    Demo('shapes32', 'kwcoco shapes: 32 images', 1, _generate_kwcoco('shapes32')),
    Demo('vidshapes3-frames6', 'kwcoco vidshapes: 3 videos of 6 frames (time slider, clips in '
         'the detail pane)', 1, _generate_kwcoco('vidshapes3-frames6')),
    Demo('large2', '2 images 5000x4000 with 60 polygons each (tests the downsampled overview)',
         1, _large(n_images=2, width=5000, height=4000, n_annots=60, seed=0)),
]}

#: the default demo
DEFAULT_DEMO = 'shapes8'


def demo_key(text) -> str | None:
    """The demo key ``text`` names (``'shapes8'`` or kwcoco's ``'special:shapes8'``), else None.

    Example:
        >>> demo_key('special:shapes8'), demo_key('shapes8'), demo_key('./shapes8')
        ('shapes8', 'shapes8', None)
    """
    if not isinstance(text, str):
        return None
    key = text.split(':', 1)[1] if text.startswith('special:') else text
    return key if key in DEMOS else None


def is_demo_key(text) -> bool:
    """Whether ``text`` is exactly a key of :data:`DEMOS` (no spaces around it).

    Example:
        >>> is_demo_key('large2'), is_demo_key('shapes5'), is_demo_key(None)
        (True, False, False)
    """
    return isinstance(text, str) and text in DEMOS


def demo_path(key: str, root: str | os.PathLike | None = None) -> Path:
    """The dataset file of demo ``key``, generated first if it is not there (or broken).

    Args:
        key: a key of :data:`DEMOS`.
        root: the folder of demo folders (default :func:`demo_root`).

    Returns:
        ``<root>/<key>-v<N>/data.kwcoco.json``.

    Raises:
        KeyError: an unknown key (the message lists the known ones).

    Example:
        >>> path = demo_path('shapes8')
        >>> path.name, path.parent.name
        ('data.kwcoco.json', 'shapes8-v1')
    """
    if not is_demo_key(key):
        raise KeyError(f'unknown demo {key!r}; the demos are {list(DEMOS)}')
    demo = DEMOS[key]
    root = Path(root) if root is not None else demo_root()
    return ensure_folder(root / demo.folder_name, demo.generate) / DATASET_FILE


def demo_key_of_path(fpath: str | os.PathLike | None,
                     root: str | os.PathLike | None = None) -> str | None:
    """The demo key whose generated dataset file is ``fpath``, else None (nothing is generated).

    A config names a demo by its key, which rebuilds the same content on any machine
    (demos are deterministic), rather than by this machine's cache path.

    Example:
        >>> demo_key_of_path(demo_path('shapes8')), demo_key_of_path('/elsewhere/data.json')
        ('shapes8', None)
    """
    if not fpath:
        return None
    root = Path(root) if root is not None else demo_root()
    real = os.path.realpath(fpath)
    for key, demo in DEMOS.items():
        if real == os.path.realpath(root / demo.folder_name / DATASET_FILE):
            return key
    return None


def load_demo(key: str, root: str | os.PathLike | None = None):
    """The ``kwcoco.CocoDataset`` of demo ``key`` (generated on first use, see :func:`demo_path`).

    Raises:
        KeyError: an unknown key.

    Example:
        >>> dset = load_demo('shapes8')
        >>> sorted(dset.name_to_cat)[:3]
        ['background', 'eff', 'star']
    """
    import kwcoco
    return kwcoco.CocoDataset(os.fspath(demo_path(key, root)))


def make_large_demo(n_images: int = 2, width: int = 5000, height: int = 4000,
                    n_annots: int = 60, seed: int = 0,
                    root: os.PathLike | None = None) -> Path:
    """Write (once) a dataset of large images; return its ``.kwcoco.json`` path.

    The ``large2`` demo is this with the defaults; other sizes are for tests and
    benchmarks. Written like every demo (atomic, reused when present).

    Args:
        n_images: number of images.
        width: image width in pixels.
        height: image height in pixels.
        n_annots: polygons per image (categories ``blob``, ``square``, ``spot``).
        seed: seed of the drawing.
        root: parent folder (default :func:`demo_root`).

    Example:
        >>> import tempfile, kwcoco
        >>> path = make_large_demo(1, 300, 200, n_annots=3, root=tempfile.mkdtemp())
        >>> dset = kwcoco.CocoDataset(str(path))
        >>> dset.n_images, dset.n_annots, dset.imgs[1]['width']
        (1, 3, 300)
    """
    root = Path(root) if root is not None else demo_root()
    folder = root / f'large_{n_images}x{width}x{height}_a{n_annots}_s{seed}'
    return ensure_folder(folder, _large(n_images, width, height, n_annots, seed)) / DATASET_FILE


# ---------------------------------------------------------------- publishing
def is_valid_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a readable :data:`DATASET_FILE` whose images all exist."""
    try:
        data = json.loads((folder / DATASET_FILE).read_text(encoding='utf8'))
        images = data['images']
        return all(os.path.isfile(folder / img['file_name']) for img in images)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_folder(folder: str | os.PathLike, generate: Callable[[Path], None]) -> Path:
    """``folder``, generated by ``generate(tmp)`` into a temporary folder and renamed
    into place unless it is there and valid already.

    Safe under concurrent callers (threads or processes): they wait on a lock
    file beside ``folder`` and the first one generates; each generates into a
    folder of its own and renames it into place, so even without the lock the
    first rename wins and the others use its folder. A present but invalid
    folder is renamed aside (never written into), then replaced.

    Args:
        folder: the final folder.
        generate: writes :data:`DATASET_FILE` and its images into the folder it is given.

    Returns:
        ``folder`` as a ``Path``.

    Raises:
        RuntimeError: ``generate`` wrote a folder that is not valid.

    Example:
        >>> import tempfile, json
        >>> from pathlib import Path
        >>> def gen(tmp):
        ...     (tmp / 'data.kwcoco.json').write_text(json.dumps({'images': []}))
        >>> folder = ensure_folder(Path(tempfile.mkdtemp()) / 'empty-v1', gen)
        >>> sorted(p.name for p in folder.iterdir())
        ['data.kwcoco.json']
    """
    folder = Path(folder)
    if is_valid_folder(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _GENERATE_LOCK, _folder_lock(folder):
        if is_valid_folder(folder):   # another thread or process published it meanwhile
            return folder
        tmp = folder.with_name(f'.tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}')
        tmp.mkdir()
        try:
            generate(tmp)
            if not is_valid_folder(tmp):
                raise RuntimeError(f'generating {folder.name} wrote no valid dataset into {tmp}')
            for _ in range(3):
                try:
                    os.rename(tmp, folder)   # atomic; fails if another process published
                    return folder
                except OSError:
                    if is_valid_folder(folder):
                        return folder        # another process won: use its folder
                    if folder.exists():      # broken: move it aside, never write into it
                        aside = folder.with_name(f'.old-{folder.name}-{uuid.uuid4().hex[:8]}')
                        try:
                            os.rename(folder, aside)
                        except OSError:
                            pass
                        shutil.rmtree(aside, ignore_errors=True)
            raise RuntimeError(f'cannot publish the generated {folder.name} into {folder}')
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on ``.<folder name>.lock`` beside ``folder``, across processes.

    Other processes wanting the same folder wait instead of generating it again,
    and a broken folder is never moved aside while another process publishes.
    Without ``fcntl`` (Windows) or on a file system refusing locks, nothing is
    locked: the atomic rename alone keeps the folder whole.
    """
    try:
        import fcntl
        handle = open(folder.with_name(f'.{folder.name}.lock'), 'a')
    except (ImportError, OSError):
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            pass
        try:
            yield
        finally:
            try:
                fcntl.flock(handle, fcntl.LOCK_UN)
            except OSError:
                pass


def _write_json_atomic(fpath: Path, data) -> None:
    """Write ``data`` as JSON to a temporary name, then rename it to ``fpath``."""
    fpath.parent.mkdir(parents=True, exist_ok=True)
    tmp = fpath.with_name(f'.{fpath.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}')
    tmp.write_text(json.dumps(data), encoding='utf8')
    os.replace(tmp, fpath)
