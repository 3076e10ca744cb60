"""Synthetic kwcoco datasets and independent "oracle" computations for the tests.

Two halves:

* **Generators** write real image files (PNG by default) into a folder and build a
  ``kwcoco.CocoDataset`` in memory that points at them, with boxes, polygon
  segmentations and keypoints (new-style ``{'xy', 'keypoint_category_id'}``
  dicts, with ``keypoint_categories``). Coordinates are multiples of 0.25 so
  that translating them by whole pixels is exact in floating point.

* **Oracles** compute what a sample *should* contain using nothing from
  ``sampler_core``: the window from the documented conventions
  (``docs/design.md``, ``sampler_core/target.py`` docstrings), pixels by decoding
  the file with PIL and cropping / padding with plain numpy, and the annotation
  set by a direct loop over the dataset's boxes.

Nothing here imports ``sampler_core``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

#: ``(height, width)`` of the images of the default synthetic dataset; the
#: last one gets no annotations at all.
DEFAULT_IMAGE_DIMS = ((900, 1200), (700, 520), (333, 451), (256, 300))

CATEGORIES = [
    {'id': 1, 'name': 'blob', 'keypoints': ['tip', 'base']},
    {'id': 2, 'name': 'ring', 'keypoints': ['center']},
    {'id': 3, 'name': 'dot', 'keypoints': ['center']},
]
KEYPOINT_CATEGORIES = [
    {'id': 1, 'name': 'tip'},
    {'id': 2, 'name': 'base'},
    {'id': 3, 'name': 'center'},
]
_KP_ID = {kp['name']: kp['id'] for kp in KEYPOINT_CATEGORIES}


# --------------------------------------------------------------------------- pixels
def coordinate_image(height: int, width: int, seed: int = 0, channels: int = 3,
                     dtype=np.uint8) -> np.ndarray:
    """An ``(H, W, C)`` image whose pixels identify their position.

    Channel 0 encodes ``x``, channel 1 ``y`` and the rest are seeded noise, so a
    crop taken from the wrong place (off by one, transposed, wrong image) does
    not match.
    """
    rng = np.random.RandomState(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    info = np.iinfo(dtype)
    span = int(info.max) + 1
    bands = [(xs * 7 + seed * 13) % span, (ys * 5 + xs // 97) % span]
    for _ in range(max(channels - 2, 0)):
        bands.append(rng.randint(0, span, size=(height, width)))
    data = np.stack(bands[:channels], axis=2).astype(dtype)
    return data


def write_image(fpath: str | os.PathLike, data: np.ndarray) -> None:
    """Write an ``(H, W, C)`` uint8 array (C in 1, 3, 4) losslessly with PIL."""
    from PIL import Image
    arr = data[:, :, 0] if data.ndim == 3 and data.shape[2] == 1 else data
    Image.fromarray(arr).save(os.fspath(fpath))


def read_image_pil(fpath: str | os.PathLike) -> np.ndarray:
    """Decode an image file with PIL only, as ``(H, W, C)``.

    Palette images are expanded to RGB; ``L`` / ``I;16`` give ``C == 1``; the
    dtype is the file's (uint8 or uint16).
    """
    from PIL import Image
    with Image.open(os.fspath(fpath)) as im:
        if im.mode == 'P':
            im = im.convert('RGBA' if 'transparency' in im.info else 'RGB')
        if im.mode in ('I;16', 'I;16B', 'I;16L'):
            arr = np.array(im, dtype=np.uint16)
        elif im.mode == 'I':
            arr = np.array(im).astype(np.uint16)
        else:
            arr = np.array(im)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


# --------------------------------------------------------------------------- geometry
def _q(value: float) -> float:
    """Round to a multiple of 0.25 (exact in binary floating point)."""
    return round(float(value) * 4) / 4


def star_polygon(rng: np.random.RandomState, cx: float, cy: float, rx: float, ry: float,
                 n: int | None = None) -> np.ndarray:
    """A simple (non self-intersecting) star-shaped polygon, ``(n, 2)`` xy."""
    n = int(rng.randint(5, 12)) if n is None else n
    theta = np.sort(rng.rand(n)) * 2 * np.pi
    theta = np.unique(np.round(theta, 3))
    if len(theta) < 3:
        theta = np.array([0.0, 2.1, 4.2])
    radius = 0.4 + 0.6 * rng.rand(len(theta))
    xy = np.stack([cx + rx * radius * np.cos(theta), cy + ry * radius * np.sin(theta)], axis=1)
    return np.array([[_q(x), _q(y)] for x, y in xy])


def polygon_bbox(xy: np.ndarray) -> list[float]:
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def make_annotation(rng: np.random.RandomState, gid: int, img_h: int, img_w: int,
                    off_image: bool = False) -> dict:
    """One random annotation (blob or ring) with polygon, bbox and keypoints.

    With ``off_image`` the object's centre may lie outside the image.
    """
    lo, hi = (-0.15, 1.15) if off_image else (0.02, 0.98)
    cx = _q(rng.uniform(lo, hi) * img_w)
    cy = _q(rng.uniform(lo, hi) * img_h)
    rx = _q(rng.uniform(4, max(5, 0.18 * img_w)))
    ry = _q(rng.uniform(4, max(5, 0.18 * img_h)))
    xy = star_polygon(rng, cx, cy, rx, ry)
    bbox = polygon_bbox(xy)
    cid = int(rng.choice([1, 2]))
    names = CATEGORIES[cid - 1]['keypoints']
    kpts = []
    for name in names:
        kx = _q(bbox[0] + rng.rand() * bbox[2])
        ky = _q(bbox[1] + rng.rand() * bbox[3])
        kpts.append({'xy': [kx, ky], 'keypoint_category_id': _KP_ID[name]})
    return {
        'image_id': gid,
        'category_id': cid,
        'bbox': bbox,
        'segmentation': [xy.ravel().tolist()],
        'keypoints': kpts,
        'area': float(abs(_shoelace(xy))),
    }


def make_point_annotation(rng: np.random.RandomState, gid: int, img_h: int, img_w: int) -> dict:
    """A zero-size (point) annotation: bbox ``[x, y, 0, 0]`` and one keypoint."""
    x = float(rng.randint(0, img_w))
    y = float(rng.randint(0, img_h))
    return {'image_id': gid, 'category_id': 3, 'bbox': [x, y, 0.0, 0.0],
            'keypoints': [{'xy': [x, y], 'keypoint_category_id': _KP_ID['center']}]}


def _shoelace(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def new_dataset_dict() -> dict:
    return {
        'info': [],
        'categories': [dict(c) for c in CATEGORIES],
        'keypoint_categories': [dict(k) for k in KEYPOINT_CATEGORIES],
        'images': [],
        'annotations': [],
    }


def build_coco(dataset: dict, dpath: str | os.PathLike):
    """A ``kwcoco.CocoDataset`` in memory whose bundle folder is ``dpath``."""
    import kwcoco
    for i, ann in enumerate(dataset['annotations'], start=1):
        ann.setdefault('id', i)
    dset = kwcoco.CocoDataset(dataset, bundle_dpath=os.fspath(dpath))
    dset.fpath = os.path.join(os.fspath(dpath), 'data.kwcoco.json')
    return dset


def make_synthetic_dataset(dpath: str | os.PathLike, image_dims=DEFAULT_IMAGE_DIMS,
                           n_annots: int = 14, n_points: int = 3, seed: int = 0,
                           empty_last: bool = True):
    """Write coordinate images (PNG) into ``dpath`` and return a kwcoco dataset.

    Args:
        dpath: folder for the images (created).
        image_dims: ``(height, width)`` of each image.
        n_annots: polygon annotations per image (some partly off the image).
        n_points: zero-size point annotations per image.
        seed: random seed.
        empty_last: give the last image no annotations.

    Returns:
        kwcoco.CocoDataset with relative ``file_name`` values.
    """
    dpath = Path(dpath)
    (dpath / 'images').mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    dataset = new_dataset_dict()
    for gid, (h, w) in enumerate(image_dims, start=1):
        fname = f'images/img_{gid:03d}.png'
        write_image(dpath / fname, coordinate_image(h, w, seed=seed * 100 + gid))
        dataset['images'].append({'id': gid, 'file_name': fname, 'width': w, 'height': h})
        if empty_last and gid == len(image_dims):
            continue
        for k in range(n_annots):
            dataset['annotations'].append(
                make_annotation(rng, gid, h, w, off_image=(k % 4 == 0)))
        for _ in range(n_points):
            dataset['annotations'].append(make_point_annotation(rng, gid, h, w))
    return build_coco(dataset, dpath)


# --------------------------------------------------------------------------- oracles
def expected_window(target: dict, dset) -> tuple[int, int, int, int]:
    """The unpadded window ``(y0, y1, x0, x1)`` of a target, by the documented rules.

    * ``slices`` / ``space_slice``: the slice bounds (``None`` -> image edge,
      a negative stop with no start counts from the end).
    * ``cx, cy`` + size: a window of ``(h, w)`` whose low edge is
      ``floor(c - d / 2)``; the size is ``window_dims``, or ``ceil`` of
      ``height`` / ``width`` (``'square'``: the larger on both sides).
    * ``aid`` alone: the annotation's box, centred as above.
    * ``gid`` with ``window_dims`` but no centre: centred on the image.
    * ``gid`` alone: the whole image.
    """
    gid = target.get('gid', target.get('image_id'))
    aid = target.get('aid')
    if gid is None and aid is not None:
        gid = dset.anns[aid]['image_id']
    img = dset.imgs[gid]
    H, W = int(img['height']), int(img['width'])
    sl = target.get('space_slice', target.get('slices'))
    if sl is not None:
        out = []
        for s, dim in zip(sl, (H, W)):
            start = 0 if s.start is None else s.start
            stop = dim if s.stop is None else s.stop
            if s.start is None and s.stop is not None and s.stop < 0:
                stop = dim + s.stop
            out.extend([start, stop])
        return tuple(out)
    t = dict(target)
    if aid is not None and 'cx' not in t:
        x, y, w, h = dset.anns[aid]['bbox']
        t.setdefault('cx', x + w / 2)
        t.setdefault('cy', y + h / 2)
        t.setdefault('width', w)
        t.setdefault('height', h)
    if 'cx' not in t:
        if t.get('window_dims') is None:
            return (0, H, 0, W)
        # a size but no place: centred on the image (docs/design.md)
        t.update(cx=W / 2, cy=H / 2, width=W, height=H)
    wd = t.get('window_dims')
    if wd is None or wd == 'square':
        dh, dw = math.ceil(t['height']), math.ceil(t['width'])
        if wd == 'square':
            dh = dw = max(dh, dw)
    elif isinstance(wd, int):
        dh = dw = wd
    else:
        dh, dw = int(wd[0]), int(wd[1])
    y0 = math.floor(t['cy'] - dh / 2)
    x0 = math.floor(t['cx'] - dw / 2)
    return (y0, y0 + dh, x0, x0 + dw)


def normalize_pad(pad: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """``pad`` as ``((top, bottom), (left, right))``."""
    if pad is None:
        return ((0, 0), (0, 0))
    if isinstance(pad, int):
        return ((pad, pad), (pad, pad))
    out = []
    for p in pad:
        out.append((p, p) if isinstance(p, int) else (int(p[0]), int(p[1])))
    return tuple(out)


def padded_window(window: tuple[int, int, int, int], pad: Any) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` grown by ``pad``."""
    (pt, pb), (pl, pr) = normalize_pad(pad)
    y0, y1, x0, x1 = window
    return (y0 - pt, y1 + pb, x0 - pl, x1 + pr)


def expected_pixels(image: np.ndarray, outer: tuple[int, int, int, int],
                    padkw: dict | None = None) -> np.ndarray:
    """The pixels of the (padded) window ``outer = (y0, y1, x0, x1)`` of ``image``.

    The part inside the image is copied; the rest is filled according to
    ``padkw`` (numpy.pad semantics applied to the in-image crop, as ndsampler
    does):

    * ``constant``: ``constant_values`` (default 0) — built with ``np.full``;
    * ``edge``: the nearest image pixel — built by clipping coordinates;
    * anything else: ``np.pad`` of the crop.
    """
    padkw = dict(padkw or {'mode': 'constant'})
    mode = padkw.pop('mode', 'constant')
    H, W = image.shape[:2]
    y0, y1, x0, x1 = outer
    iy0, iy1 = min(max(y0, 0), H), max(min(y1, H), 0)
    ix0, ix1 = min(max(x0, 0), W), max(min(x1, W), 0)
    if mode == 'constant':
        cval = padkw.get('constant_values', 0)
        out = np.full((y1 - y0, x1 - x0, image.shape[2]), cval, dtype=image.dtype)
        if iy1 > iy0 and ix1 > ix0:
            out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = image[iy0:iy1, ix0:ix1]
        return out
    if mode == 'edge':
        ys = np.clip(np.arange(y0, y1), 0, H - 1)
        xs = np.clip(np.arange(x0, x1), 0, W - 1)
        return image[ys[:, None], xs[None, :]]
    crop = image[iy0:iy1, ix0:ix1]
    extra = [(iy0 - y0, y1 - iy1), (ix0 - x0, x1 - ix1), (0, 0)]
    return np.pad(crop, extra, mode=mode, **padkw)


def annotation_ltrb(ann: dict) -> np.ndarray | None:
    """``[l, t, r, b]`` of an annotation's bbox, ``None`` when missing or invalid."""
    bbox = ann.get('bbox')
    if bbox is None:
        return None
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
        return None
    return np.array([x, y, x + w, y + h])


def visible_fraction(ltrb: np.ndarray, window: tuple[float, float, float, float]) -> float:
    """Fraction of a box's area inside ``window = (l, t, r, b)`` (half-open).

    Zero-area boxes that are a point count 1.0 when the point is inside the
    half-open window and 0.0 otherwise.
    """
    l, t, r, b = ltrb
    wl, wt, wr, wb = window
    iw = max(0.0, min(r, wr) - max(l, wl))
    ih = max(0.0, min(b, wb) - max(t, wt))
    area = (r - l) * (b - t)
    if area > 0:
        return iw * ih / area
    inside = (wl <= l < wr) and (wt <= t < wb)
    return 1.0 if inside else 0.0


def expected_aids(dset, gid: int, outer: tuple[int, int, int, int], visible_thresh: float = 0.0,
                  eps: float = 1e-9) -> tuple[set, set]:
    """``(sure, maybe)``: annotations of ``gid`` that must / may be in the window.

    An annotation belongs to the padded window ``outer = (y0, y1, x0, x1)`` when
    its visible fraction is ``> 0`` and ``>= visible_thresh``. Those within
    ``eps`` of either boundary (float round-off) go to ``maybe``. Zero-area
    boxes that are segments (one side > 0) are always ``maybe`` (their rule is
    not tested here).
    """
    y0, y1, x0, x1 = outer
    window = (x0, y0, x1, y1)
    sure, maybe = set(), set()
    for aid in dset.index.gid_to_aids[gid]:
        ltrb = annotation_ltrb(dset.anns[aid])
        if ltrb is None:
            continue
        w, h = ltrb[2] - ltrb[0], ltrb[3] - ltrb[1]
        if (w == 0) != (h == 0):
            maybe.add(aid)
            continue
        frac = visible_fraction(ltrb, window)
        if w > 0 and (0 < frac < eps or (frac > 0 and abs(frac - visible_thresh) < eps)):
            maybe.add(aid)
        elif frac > 0 and frac >= visible_thresh:
            sure.add(aid)
    return sure, maybe


def polygon_xy(ann: dict) -> list[np.ndarray]:
    """The exterior rings of a COCO polygon segmentation as ``(n, 2)`` arrays."""
    seg = ann.get('segmentation')
    if not seg:
        return []
    if isinstance(seg[0], (int, float)):
        seg = [seg]
    rings = []
    for part in seg:
        if isinstance(part, dict):
            rings.append(np.asarray(part['exterior'], dtype=np.float64).reshape(-1, 2))
        else:
            rings.append(np.asarray(part, dtype=np.float64).reshape(-1, 2))
    return rings


def keypoint_xy(ann: dict) -> np.ndarray:
    """``(n, 2)`` keypoint coordinates (new-style dicts or flat ``x, y, v`` triplets)."""
    kpts = ann.get('keypoints') or []
    if kpts and isinstance(kpts[0], dict):
        return np.array([k['xy'] for k in kpts], dtype=np.float64).reshape(-1, 2)
    return np.asarray(kpts, dtype=np.float64).reshape(-1, 3)[:, 0:2]
