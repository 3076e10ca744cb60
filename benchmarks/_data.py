"""Shared dataset generation and helpers for the sampler benchmarks.

Two datasets:

* :func:`ensure_image_dataset` writes (once, cached) a kwcoco dataset of a few
  large PNG images with bbox + polygon + keypoint annotations, drawn into the
  pixels, for the sampling benchmark.
* :func:`synthetic_coco_dict` builds (in memory, no pixel files) a kwcoco
  dataset dict with many annotations, for the index benchmark.

Nothing here imports sampler_core or ndsampler.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

#: bump when the generated dataset changes, so old caches are rebuilt
DATA_VERSION = 1

CATEGORIES = [
    {'id': 1, 'name': 'blob', 'keypoints': ['center', 'top', 'left']},
    {'id': 2, 'name': 'spike', 'keypoints': ['center', 'top', 'left']},
    {'id': 3, 'name': 'star', 'keypoints': ['center', 'top', 'left']},
]
KEYPOINT_CATEGORIES = [
    {'id': 1, 'name': 'center'},
    {'id': 2, 'name': 'top'},
    {'id': 3, 'name': 'left'},
]


def silence_warnings() -> None:
    """Hide the noise ndsampler / kwimage emit on import and use (FutureWarning etc.)."""
    warnings.filterwarnings('ignore', category=FutureWarning)
    warnings.filterwarnings('ignore', category=DeprecationWarning)
    warnings.filterwarnings('ignore', message='optional cpu_nms is not available')


def machine_info() -> dict:
    """nproc, CPU model, python / numpy versions, OPENBLAS_CORETYPE if set."""
    model = platform.processor() or 'unknown'
    try:
        with open('/proc/cpuinfo') as file:
            for line in file:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = None
    try:
        import psutil
        mem_gb = round(psutil.virtual_memory().total / 2 ** 30, 1)
    except Exception:
        pass
    return {
        'nproc': os.cpu_count(),
        'cpu': model,
        'mem_gb': mem_gb,
        'python': sys.version.split()[0],
        'numpy': np.__version__,
        'OPENBLAS_CORETYPE': os.environ.get('OPENBLAS_CORETYPE'),
    }


def sampler_core_state() -> str:
    """The git commit of the checkout and whether sampler_core/ has local changes.

    sampler_core is being optimised concurrently, so every figure must say
    which code it measured.
    """
    import subprocess
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--', 'sampler_core'],
                               cwd=root, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown (not a git checkout)'
    return f'commit {head}' + (' + uncommitted changes in sampler_core/' if dirty else '')


def print_load(label: str) -> None:
    """The 1/5/15 min load average: other work on the machine skews the figures."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return
    print(f'{label}: {one:.2f} {five:.2f} {fifteen:.2f} (nproc={os.cpu_count()})')


def print_machine_info() -> None:
    info = machine_info()
    print(f"machine: nproc={info['nproc']}, cpu={info['cpu']!r}, mem={info['mem_gb']} GiB, "
          f"python {info['python']}, numpy {info['numpy']}")
    print(f'sampler_core code: {sampler_core_state()}')
    print_load('load average at start')
    if info['OPENBLAS_CORETYPE']:
        print(f"note: OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']} is set in the environment "
              f"(left unchanged)")


# --------------------------------------------------------------------------
# image dataset for bench_sampling
# --------------------------------------------------------------------------
def _random_polygon(rng, cx, cy, radius, kind):
    """A simple (non self-intersecting) star-shaped polygon around (cx, cy)."""
    n = int(rng.randint(6, 17))
    angles = np.sort(rng.rand(n)) * 2 * np.pi
    if kind == 1:      # blob: smooth-ish radii
        radii = radius * (0.7 + 0.3 * rng.rand(n))
    elif kind == 2:    # spike: very irregular radii
        radii = radius * (0.25 + 0.75 * rng.rand(n))
    else:              # star: alternate long / short
        radii = radius * np.where(np.arange(n) % 2 == 0, 1.0, 0.45)
    xs = cx + radii * np.cos(angles) * (0.6 + 0.8 * rng.rand())
    ys = cy + radii * np.sin(angles) * (0.6 + 0.8 * rng.rand())
    return np.stack([xs, ys], axis=1)


def _make_image(rng, width, height):
    """Smooth colour noise at two scales (fast: low-res noise upsampled with cv2)."""
    import cv2
    coarse = rng.rand(height // 250 + 2, width // 250 + 2, 3).astype(np.float32)
    fine = rng.rand(height // 25 + 2, width // 25 + 2, 3).astype(np.float32)
    img = 170 * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    img += 60 * cv2.resize(fine, (width, height), interpolation=cv2.INTER_LINEAR)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def _make_annots(rng, gid, width, height, n_annots, first_aid):
    anns = []
    for k in range(n_annots):
        cid = int(rng.randint(1, 4))
        radius = float(rng.uniform(12, 150))
        cx = float(rng.uniform(radius, width - radius))
        cy = float(rng.uniform(radius, height - radius))
        poly = _random_polygon(rng, cx, cy, radius, cid)
        poly[:, 0] = poly[:, 0].clip(0, width - 1)
        poly[:, 1] = poly[:, 1].clip(0, height - 1)
        poly = np.round(poly, 1)
        x0, y0 = poly.min(axis=0)
        x1, y1 = poly.max(axis=0)
        top = poly[np.argmin(poly[:, 1])]
        left = poly[np.argmin(poly[:, 0])]
        kpts = [
            {'xy': [round(cx, 1), round(cy, 1)], 'visible': 2, 'keypoint_category_id': 1},
            {'xy': top.tolist(), 'visible': 2, 'keypoint_category_id': 2},
            {'xy': left.tolist(), 'visible': 2, 'keypoint_category_id': 3},
        ]
        anns.append({
            'id': first_aid + k,
            'image_id': gid,
            'category_id': cid,
            'bbox': [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            'area': float((x1 - x0) * (y1 - y0)),
            'segmentation': [poly.ravel().tolist()],
            'keypoints': kpts,
        })
    return anns


def _write_one_image(args):
    import cv2
    seed, gid, width, height, n_annots, first_aid, fpath = args
    rng = np.random.RandomState(seed)
    img = _make_image(rng, width, height)
    anns = _make_annots(rng, gid, width, height, n_annots, first_aid)
    for ann in anns:
        pts = np.round(np.array(ann['segmentation'][0]).reshape(-1, 2)).astype(np.int32)
        color = tuple(int(v) for v in rng.randint(0, 256, size=3))
        cv2.fillPoly(img, [pts], color)
        cv2.polylines(img, [pts], True, (255, 255, 255), 2)
    tmp = f'{fpath}.tmp-{os.getpid()}.png'
    # low compression level: the benchmark reads the .npy caches, not the PNGs
    if not cv2.imwrite(tmp, img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f'could not write {tmp}')
    os.replace(tmp, fpath)
    return anns


def ensure_image_dataset(workdir, n_images=6, width=5000, height=4000, n_annots=200,
                         seed=0, verbose=1) -> Path:
    """Write the sampling benchmark dataset into ``workdir`` once; return its json path.

    The dataset is regenerated only when its parameters (or :data:`DATA_VERSION`)
    change or a file is missing.
    """
    workdir = Path(workdir)
    params = dict(version=DATA_VERSION, n_images=n_images, width=width, height=height,
                  n_annots=n_annots, seed=seed)
    tag = f'n{n_images}_{width}x{height}_a{n_annots}_s{seed}_v{DATA_VERSION}'
    dpath = workdir / f'data_{tag}'
    fpath = dpath / 'data.kwcoco.json'
    stamp = dpath / 'params.json'
    if fpath.exists() and stamp.exists():
        try:
            ok = json.loads(stamp.read_text()) == params
            data = json.loads(fpath.read_text())
            ok = ok and all((dpath / img['file_name']).exists() for img in data['images'])
        except Exception:
            ok = False
        if ok:
            if verbose:
                print(f'dataset: reusing {fpath}')
            return fpath
    t0 = time.perf_counter()
    (dpath / 'images').mkdir(parents=True, exist_ok=True)
    jobs = []
    images = []
    for i in range(n_images):
        gid = i + 1
        fname = f'images/img_{gid:03d}.png'
        images.append({'id': gid, 'file_name': fname, 'width': width, 'height': height,
                       'channels': 'r|g|b'})
        jobs.append((seed * 1000 + gid, gid, width, height, n_annots, i * n_annots + 1,
                     os.fspath(dpath / fname)))
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        results = list(pool.map(_write_one_image, jobs))
    annotations = [ann for anns in results for ann in anns]
    dataset = {
        'info': [], 'licenses': [],
        'categories': CATEGORIES,
        'keypoint_categories': KEYPOINT_CATEGORIES,
        'images': images,
        'annotations': annotations,
    }
    tmp = fpath.with_suffix(f'.tmp-{os.getpid()}')
    tmp.write_text(json.dumps(dataset))
    os.replace(tmp, fpath)
    stamp.write_text(json.dumps(params))
    if verbose:
        print(f'dataset: generated {n_images} images {width}x{height} with {n_annots} '
              f'annotations each in {time.perf_counter() - t0:.1f} s -> {fpath}')
    return fpath


# --------------------------------------------------------------------------
# annotation-only dataset for bench_index
# --------------------------------------------------------------------------
def synthetic_coco_dict(n_annots=1_000_000, n_images=5_000, width=4000, height=3000,
                        n_cats=10, seed=0) -> dict:
    """A kwcoco dataset dict with ``n_annots`` boxes spread evenly over ``n_images``.

    Boxes are 8..200 px wide / high, uniformly placed inside the images. No
    pixel files, no segmentations (the index only looks at boxes).
    """
    rng = np.random.RandomState(seed)
    images = [{'id': g, 'file_name': f'img_{g:06d}.png', 'width': width, 'height': height}
              for g in range(1, n_images + 1)]
    cats = [{'id': c, 'name': f'cat{c}'} for c in range(1, n_cats + 1)]
    gids = (np.arange(n_annots) % n_images) + 1
    w = rng.uniform(8, 200, n_annots).round(1)
    h = rng.uniform(8, 200, n_annots).round(1)
    x = (rng.rand(n_annots) * (width - w)).round(1)
    y = (rng.rand(n_annots) * (height - h)).round(1)
    cids = rng.randint(1, n_cats + 1, n_annots)
    boxes = np.stack([x, y, w, h], axis=1).tolist()
    annotations = [
        {'id': i + 1, 'image_id': g, 'category_id': c, 'bbox': b}
        for i, (g, c, b) in enumerate(zip(gids.tolist(), cids.tolist(), boxes))
    ]
    return {'info': [], 'licenses': [], 'categories': cats, 'images': images,
            'annotations': annotations}
