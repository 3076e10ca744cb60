"""Messy real-world data: real photos in every common encoding, broken annotations.

Pixels: scikit-image's photos (astronaut, coffee, chelsea) are written in each
encoding; the expected pixels are the array we encoded (lossless formats, exact),
computed from the palette by hand (palette PNG), or PIL's decode with a small
tolerance (JPEG only).

Annotations: boxes partly / fully off the image, zero-size boxes, bow-tie and
degenerate polygons, RLE masks, keypoints off the image, annotations without a
bbox or with an invalid one, and an image without annotations. Sampling must
not crash and must give sensible results.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

import synthetic
from conftest import BACKEND_IDS, BACKENDS


def _photo(name):
    import skimage.data
    return np.ascontiguousarray(getattr(skimage.data, name)())


def _write_pil(fpath, arr, mode=None, **kw):
    from PIL import Image
    im = Image.fromarray(arr)
    if mode is not None:
        im = im.convert(mode)
    im.save(fpath, **kw)
    return im


def enc_rgb_png(fpath, rgb):
    _write_pil(fpath, rgb)
    return rgb


def enc_palette_png(fpath, rgb, transparency=False):
    from PIL import Image
    pal = Image.fromarray(rgb).convert('P', palette=Image.ADAPTIVE, colors=150)
    kw = {'transparency': 0} if transparency else {}
    pal.save(fpath, **kw)
    idx = np.array(pal)
    palette = np.array(pal.getpalette(), dtype=np.uint8).reshape(-1, 3)
    out = palette[idx]
    if transparency:
        alpha = np.where(idx == 0, 0, 255).astype(np.uint8)
        out = np.dstack([out, alpha])
    return out


def enc_gray_png(fpath, rgb):
    im = _write_pil(fpath, rgb, 'L')
    return np.array(im)[:, :, None]


def enc_rgba_png(fpath, rgb):
    h, w = rgb.shape[:2]
    alpha = ((np.arange(w)[None, :] * 3 + np.arange(h)[:, None]) % 256).astype(np.uint8)
    rgba = np.dstack([rgb, alpha])
    _write_pil(fpath, rgba)
    return rgba


def enc_bilevel_png(fpath, rgb):
    im = _write_pil(fpath, rgb, '1')
    return (np.array(im).astype(np.uint8) * 255)[:, :, None]


def enc_gray16_png(fpath, rgb):
    gray16 = (rgb[:, :, 0].astype(np.uint16) * 257 + np.arange(rgb.shape[1], dtype=np.uint16)[None, :])
    _write_pil(fpath, gray16)
    return gray16[:, :, None]


def enc_rgb16_png(fpath, rgb):
    import cv2
    rgb16 = rgb.astype(np.uint16) * 257 + 3
    assert cv2.imwrite(os.fspath(fpath), np.ascontiguousarray(rgb16[:, :, ::-1]))
    return rgb16


def enc_tiff(fpath, rgb):
    _write_pil(fpath, rgb)
    return rgb


def enc_bmp(fpath, rgb):
    _write_pil(fpath, rgb)
    return rgb


def enc_webp_lossless(fpath, rgb):
    _write_pil(fpath, rgb, lossless=True)
    return rgb


def enc_jpeg(fpath, rgb):
    _write_pil(fpath, rgb, quality=85)
    return synthetic.read_image_pil(fpath)


def enc_gray_jpeg(fpath, rgb):
    _write_pil(fpath, rgb, 'L', quality=85)
    return synthetic.read_image_pil(fpath)


def enc_progressive_jpeg(fpath, rgb):
    _write_pil(fpath, rgb, quality=80, progressive=True)
    return synthetic.read_image_pil(fpath)


def enc_cmyk_jpeg(fpath, rgb):
    from PIL import Image
    _write_pil(fpath, rgb, 'CMYK', quality=90)
    with Image.open(fpath) as im:
        return np.array(im.convert('RGB'))


def enc_exif_rotated_jpeg(fpath, rgb):
    """EXIF orientation 6: the stored (unrotated) pixels are what the dataset describes."""
    from PIL import Image
    exif = Image.Exif()
    exif[0x0112] = 6
    _write_pil(fpath, rgb, quality=90, exif=exif)
    return synthetic.read_image_pil(fpath)


#: id -> (file suffix, photo, writer, exact?)
ENCODINGS = {
    'rgb-png': ('.png', 'astronaut', enc_rgb_png, True),
    'palette-png': ('.png', 'coffee', enc_palette_png, True),
    'palette-transparent-png': ('.png', 'chelsea',
                                lambda f, a: enc_palette_png(f, a, transparency=True), True),
    'gray-png': ('.png', 'chelsea', enc_gray_png, True),
    'rgba-png': ('.png', 'astronaut', enc_rgba_png, True),
    'bilevel-png': ('.png', 'coffee', enc_bilevel_png, True),
    'gray16-png': ('.png', 'astronaut', enc_gray16_png, True),
    'rgb16-png': ('.png', 'chelsea', enc_rgb16_png, True),
    'tiff': ('.tif', 'coffee', enc_tiff, True),
    'bmp': ('.bmp', 'chelsea', enc_bmp, True),
    'webp-lossless': ('.webp', 'astronaut', enc_webp_lossless, True),
    'jpeg': ('.jpg', 'astronaut', enc_jpeg, False),
    'gray-jpeg': ('.jpg', 'coffee', enc_gray_jpeg, False),
    'progressive-jpeg': ('.jpg', 'chelsea', enc_progressive_jpeg, False),
    'cmyk-jpeg': ('.jpg', 'astronaut', enc_cmyk_jpeg, False),
    'exif-rotated-jpeg': ('.jpg', 'chelsea', enc_exif_rotated_jpeg, False),
}


@pytest.fixture(scope='module')
def encoded(tmp_path_factory):
    """``(dset, {encoding: (gid, expected pixels)})``; half the images lack width/height."""
    from PIL import Image
    dpath = tmp_path_factory.mktemp('encodings')
    dataset = synthetic.new_dataset_dict()
    expected = {}
    photos = {}
    for gid, (key, (suffix, photo, writer, _)) in enumerate(ENCODINGS.items(), start=1):
        if photo not in photos:
            photos[photo] = _photo(photo)
        fname = f'{key}{suffix}'
        expected[key] = (gid, writer(dpath / fname, photos[photo]))
        img = {'id': gid, 'file_name': fname}
        if gid % 2:  # the rest get their size from the file header, as real users' data does
            with Image.open(dpath / fname) as im:
                img['width'], img['height'] = im.size
        dataset['images'].append(img)
    return synthetic.build_coco(dataset, dpath), expected


def _windows(H, W):
    return {
        'whole': ({'slices': (slice(0, H), slice(0, W))}, None),
        'corner-pad': ({'slices': (slice(-7, 30), slice(W - 25, W + 11)), 'pad': (3, 4)}, None),
        'edge-mode': ({'slices': (slice(H - 9, H + 12), slice(-6, 20)),
                       'padkw': {'mode': 'edge'}}, {'mode': 'edge'}),
    }


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize('key', list(ENCODINGS), ids=list(ENCODINGS))
def test_real_images_pixels_per_encoding(encoded, sampler_factory, key, backend):
    dset, expected = encoded
    sampler = sampler_factory(dset, backend)
    gid, image = expected[key]
    exact = ENCODINGS[key][3]
    H, W = image.shape[:2]
    assert (dset.imgs[gid]['height'], dset.imgs[gid]['width']) == (H, W)
    for name, (extra, padkw) in _windows(H, W).items():
        target = dict(extra, gid=gid)
        sample = sampler.load_sample(dict(target), with_annots=False)
        im = np.asarray(sample['im'])
        window = synthetic.expected_window(target, dset)
        want = synthetic.expected_pixels(image, synthetic.padded_window(window, target.get('pad')),
                                         padkw)
        assert im.shape == want.shape, name
        assert im.dtype == want.dtype, name
        if exact:
            np.testing.assert_array_equal(im, want, err_msg=name)
        else:
            diff = np.abs(im.astype(np.int64) - want.astype(np.int64))
            assert diff.max() <= 4 and diff.mean() <= 1.5, (name, diff.max(), diff.mean())


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_real_images_gray_alpha_png_keeps_gray_and_alpha(tmp_path, backend):
    """LA (gray + alpha) PNG: either ``[gray, alpha]`` or ``[gray, gray, gray, alpha]``."""
    import sampler_core
    la = np.dstack([_photo('camera'), (np.arange(512)[None, :] % 256).repeat(512, 0)]).astype(np.uint8)
    from PIL import Image
    Image.fromarray(la, 'LA').save(tmp_path / 'la.png')
    dataset = synthetic.new_dataset_dict()
    dataset['images'].append({'id': 1, 'file_name': 'la.png'})
    dset = synthetic.build_coco(dataset, tmp_path)
    sampler = sampler_core.CocoSampler(dset, backend=backend, workdir=tmp_path)
    im = sampler.load_sample({'gid': 1, 'slices': (slice(10, 50), slice(-5, 40))})['im']
    assert im.shape[:2] == (40, 45) and im.shape[2] in (2, 4)
    want_gray = synthetic.expected_pixels(la[:, :, 0:1], (10, 50, -5, 40))
    want_alpha = synthetic.expected_pixels(la[:, :, 1:2], (10, 50, -5, 40))
    for c in range(im.shape[2] - 1):
        np.testing.assert_array_equal(im[:, :, c:c + 1], want_gray)
    np.testing.assert_array_equal(im[:, :, -1:], want_alpha)


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_real_images_missing_file_is_file_not_found(tmp_path, backend):
    import sampler_core
    dataset = synthetic.new_dataset_dict()
    synthetic.write_image(tmp_path / 'ok.png', synthetic.coordinate_image(20, 30))
    dataset['images'] += [{'id': 1, 'file_name': 'ok.png', 'width': 30, 'height': 20},
                          {'id': 2, 'file_name': 'gone.png', 'width': 30, 'height': 20}]
    dset = synthetic.build_coco(dataset, tmp_path)
    sampler = sampler_core.CocoSampler(dset, backend=backend, workdir=tmp_path)
    assert sampler.load_sample({'gid': 1})['im'].shape == (20, 30, 3)
    with pytest.raises(FileNotFoundError):
        sampler.load_sample({'gid': 2})


# ------------------------------------------------------------------ messy annotations
BOWTIE_A = 20  # half-size of the bow-tie: two triangles of area A**2 each


def _rect(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _messy_annotations(W, H):
    """(name, annotation) pairs for an image of size ``W x H``."""
    a = BOWTIE_A
    m = np.zeros((H, W), dtype=np.uint8)
    m[100:140, 200:260] = 1
    import kwimage
    rle = kwimage.Mask(m, 'c_mask').to_array_rle().data
    rle = {'size': [H, W], 'counts': [int(c) for c in rle['counts']]}
    # the same mask as COCO writes it compressed (a string of counts, as in iscrowd / results)
    from pycocotools import mask as coco_mask
    packed = coco_mask.encode(np.asfortranarray(m))
    packed = {'size': [H, W], 'counts': packed['counts'].decode('ascii')}
    return [
        ('partly-off', {'category_id': 1, 'bbox': [W - 32, -20, 80, 60],
                        'segmentation': _rect(W - 32, -20, 80, 60),
                        'keypoints': [{'xy': [W - 10, 5], 'keypoint_category_id': 1},
                                      {'xy': [W + 30, 5], 'keypoint_category_id': 2}]}),
        ('fully-off', {'category_id': 1, 'bbox': [W + 88, H + 18, 40, 30],
                       'segmentation': _rect(W + 88, H + 18, 40, 30),
                       'keypoints': [{'xy': [W + 100, H + 30], 'keypoint_category_id': 1}]}),
        ('point', {'category_id': 3, 'bbox': [100, 120, 0, 0],
                   'keypoints': [{'xy': [100, 120], 'keypoint_category_id': 3}]}),
        ('zero-height', {'category_id': 2, 'bbox': [200, 300, 25, 0]}),
        ('bowtie', {'category_id': 1, 'bbox': [50, 50, 2 * a, 2 * a],
                    'segmentation': [[50, 50, 50 + 2 * a, 50 + 2 * a, 50 + 2 * a, 50, 50, 50 + 2 * a]]}),
        ('two-point-polygon', {'category_id': 2, 'bbox': [300, 300, 40, 20],
                               'segmentation': [[300, 300, 340, 320]]}),
        ('collinear-polygon', {'category_id': 2, 'bbox': [350, 350, 20, 20],
                               'segmentation': [[350, 350, 360, 360, 370, 370]]}),
        ('keypoints-off-image', {'category_id': 1, 'bbox': [400, 400, 50, 50],
                                 'segmentation': _rect(400, 400, 50, 50),
                                 'keypoints': [{'xy': [-10, 5], 'keypoint_category_id': 1},
                                               {'xy': [W + 80, H + 80], 'keypoint_category_id': 2},
                                               {'xy': [420, 420], 'keypoint_category_id': 1}]}),
        ('no-bbox', {'category_id': 1, 'segmentation': _rect(10, 10, 30, 30)}),
        ('bbox-none', {'category_id': 1, 'bbox': None}),
        ('nan-bbox', {'category_id': 1, 'bbox': [float('nan'), 10, 5, 5]}),
        ('negative-width', {'category_id': 1, 'bbox': [20, 20, -5, 10]}),
        ('empty-segmentation', {'category_id': 2, 'bbox': [10, 400, 30, 30], 'segmentation': []}),
        ('rle-uncompressed', {'category_id': 2, 'bbox': [200, 100, 60, 40], 'segmentation': rle}),
        ('rle-compressed', {'category_id': 2, 'bbox': [200, 100, 60, 40], 'segmentation': packed}),
        ('rle-garbage', {'category_id': 2, 'bbox': [150, 150, 10, 10],
                         'segmentation': {'size': [H, W], 'counts': 'not-an-rle'}}),
        ('old-style-keypoints', {'category_id': 1, 'bbox': [250, 200, 40, 40],
                                 'keypoints': [255, 205, 2, 280, 235, 1]}),
    ]


@pytest.fixture(scope='module')
def messy(tmp_path_factory):
    """``(dset, names)``: astronaut with messy annotations, chelsea gray with one box,
    coffee JPEG with none. ``names`` maps annotation name -> aid."""
    dpath = tmp_path_factory.mktemp('messy')
    astronaut = _photo('astronaut')
    synthetic.write_image(dpath / 'astronaut.png', astronaut)
    _write_pil(dpath / 'chelsea.png', _photo('chelsea'), 'L')
    _write_pil(dpath / 'coffee.jpg', _photo('coffee'), quality=90)
    dataset = synthetic.new_dataset_dict()
    dataset['images'] += [
        {'id': 1, 'file_name': 'astronaut.png', 'width': 512, 'height': 512},
        {'id': 2, 'file_name': 'chelsea.png'},
        {'id': 3, 'file_name': 'coffee.jpg'},
    ]
    names = {}
    for name, ann in _messy_annotations(512, 512):
        ann = dict(ann, image_id=1, id=len(dataset['annotations']) + 1)
        names[name] = ann['id']
        dataset['annotations'].append(ann)
    dataset['annotations'].append({'id': 100, 'image_id': 2, 'category_id': 2,
                                   'bbox': [30, 40, 100, 80], 'segmentation': _rect(30, 40, 100, 80)})
    names['gray-box'] = 100
    return synthetic.build_coco(dataset, dpath), names


@pytest.fixture(scope='module')
def messy_sampler(messy, tmp_path_factory):
    import sampler_core
    dset, _ = messy
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return sampler_core.CocoSampler(dset, backend='npy',
                                        workdir=tmp_path_factory.mktemp('messy-work'))


def test_real_images_invalid_boxes_warn_and_are_not_targets(messy, tmp_path):
    import sampler_core
    dset, names = messy
    with pytest.warns(UserWarning) as record:
        sampler = sampler_core.CocoSampler(dset, backend=None)
        targets = sampler.regions.targets
    text = ' '.join(str(w.message) for w in record)
    assert str(names['nan-bbox']) in text and str(names['negative-width']) in text
    assert str(names['fully-off']) in text   # wholly outside its image: all padding
    valid = sorted(a for a, ann in dset.anns.items() if synthetic.annotation_ltrb(ann) is not None
                   and a != names['fully-off'])
    assert sorted(np.asarray(targets['aid']).tolist()) == valid
    for bad in ['no-bbox', 'bbox-none', 'nan-bbox', 'negative-width']:
        assert names[bad] not in valid


def test_real_images_missing_sizes_filled_from_file(messy, messy_sampler):
    dset, _ = messy
    for gid, name in [(2, 'chelsea'), (3, 'coffee')]:
        h, w = _photo(name).shape[:2]
        assert (dset.imgs[gid]['height'], dset.imgs[gid]['width']) == (h, w)
    im = messy_sampler.load_sample({'gid': 2})['im']
    assert im.shape == (300, 451, 1)


def test_real_images_whole_image_sample(messy, messy_sampler):
    """Every valid annotation overlapping the image is there; broken ones never are."""
    dset, names = messy
    sample = messy_sampler.load_sample({'gid': 1, 'clip_annots': True})
    np.testing.assert_array_equal(sample['im'], _photo('astronaut'))
    aids = sample['annots']['aids'].tolist()
    sure, maybe = synthetic.expected_aids(dset, 1, (0, 512, 0, 512))
    assert sure <= set(aids) <= sure | maybe
    for name in ['partly-off', 'point', 'bowtie', 'keypoints-off-image', 'rle-uncompressed',
                 'rle-compressed',
                 'two-point-polygon', 'collinear-polygon', 'old-style-keypoints']:
        assert names[name] in aids, name
    for name in ['fully-off', 'no-bbox', 'bbox-none', 'nan-bbox', 'negative-width']:
        assert names[name] not in aids, name


def _index(sample, aid):
    return sample['annots']['aids'].tolist().index(aid)


@pytest.mark.parametrize('pad', [None, (6, 9)], ids=['nopad', 'pad'])
def test_real_images_fully_off_image_box_is_all_padding(messy, messy_sampler, pad):
    dset, names = messy
    aid = names['fully-off']
    x, y, w, h = dset.anns[aid]['bbox']
    sample = messy_sampler.load_sample({'aid': aid, 'pad': pad, 'clip_annots': True})
    ph, pw = pad or (0, 0)
    assert sample['im'].shape == (h + 2 * ph, w + 2 * pw, 3)
    assert (sample['im'] == 0).all()
    i = _index(sample, aid)
    assert sample['annots']['visible'][i] == 1.0
    np.testing.assert_array_equal(sample['annots']['rel_boxes'].to_xywh().data[i], [pw, ph, w, h])
    # nothing from the real image can be in a window that lies beyond it
    assert sample['annots']['aids'].tolist() == [aid]


def test_real_images_partly_off_image_box(messy, messy_sampler):
    dset, names = messy
    aid = names['partly-off']
    x, y, w, h = dset.anns[aid]['bbox']
    sample = messy_sampler.load_sample({'aid': aid, 'clip_annots': True})
    want = synthetic.expected_pixels(_photo('astronaut'), (y, y + h, x, x + w))
    np.testing.assert_array_equal(sample['im'], want)
    assert (sample['im'][:20] == 0).all() and (sample['im'][:, 32:] == 0).all()
    i = _index(sample, aid)
    clipped = sample['annots']['clipped_dets'][0]
    np.testing.assert_array_equal(clipped.boxes.to_ltrb().data[i], [0, 0, w, h])
    kpts = sample['annots']['rel_kpts'].data[i]
    np.testing.assert_allclose(kpts.xy, synthetic.keypoint_xy(dset.anns[aid]) - [x, y])
    # the keypoint at x = W + 30 is outside the window (x range [W-32, W+48)) -> still kept;
    # clipping keeps both (both lie inside the window)
    assert len(clipped.data['keypoints'].data[i]) == 2


def test_real_images_keypoints_off_image(messy, messy_sampler):
    dset, names = messy
    aid = names['keypoints-off-image']
    sample = messy_sampler.load_sample({'gid': 1, 'clip_annots': True})
    i = _index(sample, aid)
    kxy = synthetic.keypoint_xy(dset.anns[aid])
    np.testing.assert_allclose(sample['annots']['rel_kpts'].data[i].xy, kxy)
    kept = sample['annots']['clipped_dets'][0].data['keypoints'].data[i].xy
    inside = kxy[(kxy[:, 0] >= 0) & (kxy[:, 0] < 512) & (kxy[:, 1] >= 0) & (kxy[:, 1] < 512)]
    assert len(inside) == 1
    np.testing.assert_allclose(kept, inside)


def test_real_images_old_style_keypoints(messy, messy_sampler):
    dset, names = messy
    aid = names['old-style-keypoints']
    x, y = 240, 190
    sample = messy_sampler.load_sample({'gid': 1, 'slices': (slice(y, y + 60), slice(x, x + 60))})
    kpts = sample['annots']['rel_kpts'].data[_index(sample, aid)]
    np.testing.assert_allclose(kpts.xy, synthetic.keypoint_xy(dset.anns[aid]) - [x, y])


def test_real_images_bowtie_polygon_is_repaired_when_clipped(messy, messy_sampler):
    dset, names = messy
    aid = names['bowtie']
    a = BOWTIE_A
    whole = messy_sampler.load_sample({'gid': 1, 'clip_annots': True})
    clipped = whole['annots']['clipped_dets'][0].data['segmentations'].data[_index(whole, aid)]
    assert clipped.to_shapely().area == pytest.approx(2 * a * a)
    # a window holding the left half of the bow-tie: its left triangle
    # (apex at the centre, base on x = 50) is the part inside
    half = messy_sampler.load_sample({'gid': 1, 'clip_annots': True,
                                      'slices': (slice(0, 200), slice(0, 50 + a))})
    clipped = half['annots']['clipped_dets'][0].data['segmentations'].data[_index(half, aid)]
    assert clipped.to_shapely().area == pytest.approx(a * a)
    # the unclipped polygon is passed on as it is, translated
    rel = half['annots']['rel_ssegs'].data[_index(half, aid)]
    ring = np.asarray(rel.to_multi_polygon().data[0].data['exterior'].data)
    np.testing.assert_allclose(ring, synthetic.polygon_xy(dset.anns[aid])[0])


DEGENERATE = ['two-point-polygon', 'collinear-polygon', 'empty-segmentation', 'rle-garbage']


@pytest.mark.parametrize('name', DEGENERATE, ids=DEGENERATE)
def test_real_images_degenerate_segmentations_do_not_break_sampling(messy, messy_sampler, name):
    dset, names = messy
    aid = names[name]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sample = messy_sampler.load_sample({'aid': aid, 'pad': (5, 5), 'clip_annots': True})
    x, y, w, h = dset.anns[aid]['bbox']
    assert sample['im'].shape == (h + 10, w + 10, 3)
    i = _index(sample, aid)
    np.testing.assert_array_equal(sample['annots']['rel_boxes'].to_xywh().data[i], [5, 5, w, h])
    rel = sample['annots']['rel_ssegs'].data[i]
    rings = synthetic.polygon_xy(dset.anns[aid]) if name != 'rle-garbage' else []
    if rel is not None:  # passed on as it is, translated (it has no area)
        got = [np.asarray(p.data['exterior'].data) for p in rel.to_multi_polygon().data]
        assert len(got) == len(rings)
        for g, r in zip(got, rings):
            np.testing.assert_allclose(g, r - [x - 5, y - 5])
    assert sample['annots']['clipped_dets'][0].data['segmentations'].data[i] is None


@pytest.mark.parametrize('name', ['rle-uncompressed', 'rle-compressed'])
def test_real_images_rle(messy, messy_sampler, name):
    dset, names = messy
    aid = names[name]
    sample = messy_sampler.load_sample({'gid': 1, 'clip_annots': True,
                                        'slices': (slice(0, 120), slice(0, 512))})
    i = _index(sample, aid)
    clipped = sample['annots']['clipped_dets'][0].data['segmentations'].data[i]
    # the mask is rows 100:140, columns 200:260; the window keeps rows 100:120
    assert clipped.to_shapely().area == pytest.approx(20 * 60, rel=0.1)
    x0, y0, x1, y1 = clipped.to_shapely().bounds
    assert (x0, y0, x1, y1) == pytest.approx((200, 100, 260, 120), abs=1)
    # drawn back as a mask in window pixels, it covers exactly the kept rows
    mask = clipped.to_mask(dims=(120, 512)).data.astype(bool)
    want = np.zeros((120, 512), bool)
    want[100:120, 200:260] = True
    assert (mask != want).sum() <= 2 * (20 + 60)       # at most the outline differs


def test_real_images_zero_size_boxes(messy, messy_sampler):
    dset, names = messy
    point = names['point']
    # a zero-size box cannot define a window by itself: a documented error
    with pytest.raises(ValueError):
        messy_sampler.load_sample({'aid': point})
    sample = messy_sampler.load_sample({'aid': point, 'window_dims': (32, 32)})
    want = synthetic.expected_pixels(_photo('astronaut'), (120 - 16, 120 + 16, 100 - 16, 100 + 16))
    np.testing.assert_array_equal(sample['im'], want)
    assert point in sample['annots']['aids'].tolist()
    assert sample['annots']['visible'][_index(sample, point)] == 1.0


def test_real_images_zero_size_positives_left_out_without_window_dims(messy):
    import sampler_core
    dset, names = messy
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sampler = sampler_core.CocoSampler(dset, backend=None)
    zero = {names['point'], names['zero-height']}
    with pytest.warns(UserWarning, match='zero-size'):
        n_pos, _ = sampler.regions.preselect(window_dims=None, rng=0)
    pos = [sampler.regions.get_positive(i)['aid'] for i in range(n_pos)]
    valid = {a for a, ann in dset.anns.items() if synthetic.annotation_ltrb(ann) is not None
             and a != names['fully-off']}
    assert set(pos) == valid - zero
    for i in range(n_pos):  # and every one of them loads
        sample = sampler.load_positive(i)
        assert sample['target']['aid'] in sample['annots']['aids'].tolist()
    n_pos, _ = sampler.regions.preselect(window_dims=(32, 32), rng=0)
    pos = {sampler.regions.get_positive(i)['aid'] for i in range(n_pos)}
    assert pos == valid


BROKEN_BOXES = ['no-bbox', 'bbox-none', 'nan-bbox', 'negative-width']


@pytest.mark.parametrize('name', BROKEN_BOXES, ids=BROKEN_BOXES)
def test_real_images_broken_box_as_target_is_documented_error(messy, messy_sampler, name):
    _, names = messy
    with pytest.raises((ValueError, TypeError)):
        messy_sampler.load_sample({'aid': names[name]})


def test_real_images_load_image_with_annots_keeps_everything(messy, messy_sampler):
    dset, _ = messy
    img, anns = messy_sampler.load_image_with_annots(1)
    np.testing.assert_array_equal(np.asarray(img['imdata']), _photo('astronaut'))
    assert sorted(a['id'] for a in anns) == sorted(dset.index.gid_to_aids[1])


def test_real_images_image_without_annotations(messy, messy_sampler):
    sample = messy_sampler.load_sample({'gid': 3, 'pad': (2, 2)})
    assert len(sample['annots']['aids']) == 0
    assert sample['im'].shape == (404, 604, 3)
    assert (sample['im'][:2] == 0).all()


def test_real_images_negatives_come_from_images_without_annotations(messy):
    import sampler_core
    dset, _ = messy
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sampler = sampler_core.CocoSampler(dset, backend=None)
    _, n_neg = sampler.regions.preselect(n_pos=0, n_neg=40, window_dims=(64, 64), rng=0)
    assert n_neg == 40
    gids = set()
    for i in range(n_neg):
        sample = sampler.load_negative(i)
        tr = sample['target']
        gids.add(tr['gid'])
        assert tr['aid'] == -1
        window = synthetic.expected_window(
            {'gid': tr['gid'], 'cx': tr['cx'], 'cy': tr['cy'], 'window_dims': (64, 64)}, dset)
        sure, maybe = synthetic.expected_aids(dset, tr['gid'], window)
        assert not sure and len(sample['annots']['aids']) == 0
        y0, y1, x0, x1 = window
        H, W = dset.imgs[tr['gid']]['height'], dset.imgs[tr['gid']]['width']
        assert 0 <= y0 and y1 <= H and 0 <= x0 and x1 <= W  # negatives fit in their image
    assert 3 in gids


def test_real_images_all_windows_over_messy_image_do_not_crash(messy, messy_sampler):
    """A sweep of windows (in, across and far beyond the image) with every option on."""
    dset, _ = messy
    rng = np.random.RandomState(0)
    image = _photo('astronaut')
    for _ in range(40):
        h, w = (int(v) for v in rng.randint(1, 200, size=2))
        y0, x0 = (int(v) for v in rng.randint(-250, 700, size=2))
        target = {'gid': 1, 'slices': (slice(y0, y0 + h), slice(x0, x0 + w)),
                  'pad': (int(rng.randint(0, 8)), int(rng.randint(0, 8))), 'clip_annots': True}
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            sample = messy_sampler.load_sample(dict(target))
        outer = synthetic.padded_window((y0, y0 + h, x0, x0 + w), target['pad'])
        np.testing.assert_array_equal(sample['im'], synthetic.expected_pixels(image, outer))
        sure, maybe = synthetic.expected_aids(dset, 1, outer)
        assert sure <= set(sample['annots']['aids'].tolist()) <= sure | maybe
        assert math.isfinite(float(np.sum(sample['annots']['rel_boxes'].data)))
