"""Which files the explorer may open: the allowed roots.

A path typed or uploaded in the browser is opened only when its *real* path
(``..`` collapsed, every symlink followed) lies inside one of the allowed root
folders. The check runs before anything is read, so a refused path is never
opened. The default roots are the working directory and the demo folders
(:func:`demo_roots`).

Example:
    >>> import os, tempfile
    >>> root = os.path.realpath(tempfile.mkdtemp())
    >>> check_path(os.path.join(root, 'a.kwcoco.json'), [root]) == os.path.join(root, 'a.kwcoco.json')
    True
    >>> check_path(os.path.join(root, '..', 'b.json'), [root])
    Traceback (most recent call last):
    ...
    PermissionError: ...
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence


def demo_roots() -> list[str]:
    """Folders holding the bundled demo data (kwcoco's demo cache and ours)."""
    import ubelt as ub
    from app.demo import DEMO_ROOT
    return [os.fspath(ub.Path.appdir('kwcoco')), os.fspath(DEMO_ROOT)]


def default_roots() -> list[str]:
    """The working directory and the demo folders."""
    return [os.getcwd()] + demo_roots()


def normalize_roots(roots: Iterable[str | os.PathLike] | None) -> list[str]:
    """Real paths of ``roots`` (default :func:`default_roots`), duplicates removed."""
    roots = default_roots() if roots is None else list(roots)
    out = []
    for root in roots:
        real = os.path.realpath(os.path.expanduser(os.fspath(root)))
        if real not in out:
            out.append(real)
    return out


def is_inside(path: str | os.PathLike, roots: Sequence[str]) -> bool:
    """Whether the real path of ``path`` is one of ``roots`` or inside one."""
    real = os.path.realpath(os.path.expanduser(os.fspath(path)))
    for root in roots:
        root = os.path.realpath(root)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def check_path(path: str | os.PathLike, roots: Sequence[str]) -> str:
    """The real path of ``path`` when it lies inside an allowed root.

    Nothing is read: only the path is resolved (``..`` and symlinks).

    Args:
        path: the path typed by the user.
        roots: allowed root folders (real paths, see :func:`normalize_roots`).

    Returns:
        the resolved, absolute path.

    Raises:
        PermissionError: the path resolves outside every root (names the path
            and the roots).
        ValueError: an empty path.
    """
    text = os.fspath(path).strip() if path is not None else ''
    if not text:
        raise ValueError('no dataset path given')
    real = os.path.realpath(os.path.expanduser(text))
    if not is_inside(real, roots):
        raise PermissionError(
            f'refused: {text} resolves to {real}, outside the allowed folders '
            f'{list(roots)} (start the app with --allow-root DIR to allow another folder)')
    return real


def check_dataset_files(dset, roots: Sequence[str]) -> None:
    """Refuse a dataset whose image files lie outside the allowed roots.

    Raises:
        PermissionError: names the first image path outside the roots.
    """
    for gid, img in dset.imgs.items():
        if img.get('file_name') is None:
            continue
        fpath = os.fspath(dset.get_image_fpath(gid))
        if not is_inside(fpath, roots):
            raise PermissionError(
                f'refused: image {gid} of this dataset is {fpath}, outside the allowed '
                f'folders {list(roots)}')
