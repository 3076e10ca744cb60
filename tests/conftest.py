"""Shared fixtures: demo and synthetic datasets, samplers per backend, decoded images.

Datasets and samplers are session-scoped (building them is the slow part);
tests must not modify them. Tests that need to mutate data build their own.
"""
from __future__ import annotations

import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # make ``import synthetic`` work however pytest imports us
    sys.path.insert(0, _HERE)

import synthetic  # noqa: E402

#: backends every pixel test runs with
BACKENDS = [None, 'npy']
BACKEND_IDS = ['backend-none', 'backend-npy']


@pytest.fixture(scope='session')
def shapes8_dset():
    import kwcoco
    return kwcoco.CocoDataset.demo('shapes8')


@pytest.fixture(scope='session')
def shapes_path(tmp_path_factory):
    """Path (str) of shapes8 written as a .kwcoco.json file; tests must not modify it."""
    import kwcoco
    dset = kwcoco.CocoDataset.demo('shapes8')
    path = tmp_path_factory.mktemp('shapes8') / 'shapes8.kwcoco.json'
    dset.fpath = str(path)
    dset.dump(str(path))
    return str(path)


@pytest.fixture(scope='session')
def vidshapes2_dset():
    import kwcoco
    return kwcoco.CocoDataset.demo('vidshapes2')


@pytest.fixture(scope='session')
def synth_dset(tmp_path_factory):
    """Four coordinate-coded PNGs (largest 1200x900), polygons, keypoints, points.

    The last image has no annotations.
    """
    dpath = tmp_path_factory.mktemp('synth')
    return synthetic.make_synthetic_dataset(dpath, seed=0)


@pytest.fixture(scope='session')
def sampler_factory(tmp_path_factory):
    """``make(dset, backend)``: one cached CocoSampler per (dataset, backend)."""
    import sampler_core
    cache = {}

    def make(dset, backend=None):
        key = (id(dset), backend)
        if key not in cache:
            workdir = tmp_path_factory.mktemp('workdir') if backend is not None else None
            cache[key] = (dset, sampler_core.CocoSampler(dset, backend=backend, workdir=workdir))
        return cache[key][1]
    return make


@pytest.fixture(scope='session')
def source_pixels():
    """``get(dset, gid)``: the image decoded with PIL as ``(H, W, C)`` (memoized)."""
    cache = {}

    def get(dset, gid):
        fpath = os.fspath(dset.get_image_fpath(gid))
        if fpath not in cache:
            cache[fpath] = synthetic.read_image_pil(fpath)
        return cache[fpath]
    return get


@pytest.fixture(scope='session')
def shapes_copy(tmp_path_factory):
    """shapes8 written as a .kwcoco.json with its images in a fresh folder."""
    import shutil

    import kwcoco
    root = tmp_path_factory.mktemp('data')
    src = kwcoco.CocoDataset.demo('shapes8')
    for img in src.imgs.values():
        dst = root / 'images' / os.path.basename(img['file_name'])
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(src.get_image_fpath(img['id']), dst)
    dset = src.copy()
    for img in dset.imgs.values():
        img['file_name'] = 'images/' + os.path.basename(img['file_name'])
    path = root / 'train.kwcoco.json'
    dset.fpath = str(path)
    dset.dump(str(path))
    return root, path
