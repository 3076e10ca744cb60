"""The explorer server shared through links: nobody may inject scripts, choose where the
server writes, read another session's uploads, or kill a session with a large upload.

Without a browser: what the Panel objects hold (the browser side is in
``tests/test_app_browser.py``, ``test_browser_*_shown_as_text`` and the upload tests).
"""
from __future__ import annotations

import html
import os
import uuid

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

#: a text that runs a script wherever it is rendered as HTML
EVIL = '<img src=x onerror=alert(1)>'


def evil_dataset(folder, name: str = EVIL):
    """shapes8 with its category 'star' renamed ``name``, written to ``folder`` (absolute
    image paths, so the file works from anywhere)."""
    import kwcoco
    dset = kwcoco.CocoDataset.demo('shapes8')
    dset.reroot(absolute=True)
    dset.rename_categories({'star': name})
    path = os.path.join(folder, 'evil.kwcoco.json')
    dset.fpath = path
    dset.dump(path)
    return path


def upload(widget, name: str, data: bytes) -> None:
    """Upload ``data`` named ``name`` through the explorer's upload widget, as the
    browser does (a FileDropper's dict of name -> bytes, or a FileInput's filename + value)."""
    if isinstance(widget.value, dict) or hasattr(widget, 'chunk_size'):
        widget.value = {name: data}
    else:
        widget.filename = name
        widget.value = data


def rendered_markdown(text: str) -> str:
    """``text`` as Panel's Markdown pane renders it: the HTML the browser puts in the page
    (Panel sends it HTML-escaped; the browser unescapes it once)."""
    from panel.pane.markup import Markdown
    return html.unescape(Markdown(text)._transform_object(text)['object'])


@pytest.fixture
def explorer(tmp_path):
    from app.layout import Explorer
    from app.uploads import UploadStore
    kw = {}
    import inspect
    if 'uploads' in inspect.signature(Explorer.__init__).parameters:
        kw['uploads'] = UploadStore(tmp_path / 'uploads')
    return Explorer('shapes8', backend=None, n_pos=4, **kw)


# ------------------------------------------------------------------ 1. script injection
def test_escape_markdown_shows_every_character_as_text():
    from app.text import escape_markdown
    for text in [EVIL, '**bold** _it_ `code` [a](javascript:alert(1)) # h', '$x$ & <b>', '1. x']:
        out = rendered_markdown(escape_markdown(text))
        assert '<img' not in out and '<b>' not in out and '<a' not in out and '<strong' not in out
        inner = out.strip()
        assert inner.startswith('<p>') and inner.endswith('</p>'), out
        assert html.unescape(inner[3:-4]) == text


def test_error_message_is_shown_as_text(explorer, monkeypatch):
    notes = []

    class Notes:
        def __getattr__(self, level):
            return lambda text, duration=None: notes.append(text)

    import panel as pn
    monkeypatch.setattr(type(pn.state), 'notifications', property(lambda self: Notes()))
    explorer.state.dataset = EVIL          # a link's ?dataset=... or a typed path
    assert EVIL in explorer.state.message['text']
    assert explorer.alert.visible
    shown = rendered_markdown(explorer.alert.object)
    assert '<img' not in shown and EVIL in html.unescape(shown)
    assert notes and '<img' not in notes[-1] and EVIL in html.unescape(notes[-1])


def test_category_names_are_option_labels_as_text(tmp_path):
    from app.layout import Explorer
    path = evil_dataset(str(tmp_path))
    ex = Explorer(path, roots=[str(tmp_path)] + _demo_roots(), backend=None)
    for widget in (ex.categories, ex.image_categories):
        assert EVIL not in widget.labels                   # Choices.js renders labels as HTML
        assert html.escape(EVIL) in widget.labels
        assert EVIL in widget.values
    ex.categories.value = [EVIL]
    assert ex.state.categories == [EVIL]


def test_dataset_info_shows_an_uploaded_name_as_text(explorer):
    import kwcoco
    dset = kwcoco.CocoDataset.demo('shapes8')
    dset.reroot(absolute=True)
    _allow_uploads(explorer)
    upload(explorer.upload, EVIL + '.kwcoco.json', dset.dumps().encode())
    assert explorer.state.message is None, explorer.state.message
    assert EVIL in explorer.state.dataset
    shown = rendered_markdown(explorer.dataset_info.object)
    assert '<img' not in shown and EVIL in html.unescape(shown)


def _demo_roots():
    from app.roots import demo_roots
    return demo_roots()


def _allow_uploads(explorer):
    """The current code writes uploads under DEMO_ROOT; the fixed one under its store."""
    store = getattr(explorer, 'uploads', None)
    if store is not None:
        explorer.state.roots = explorer.state.roots + [store.root]


# ------------------------------------------------------------------ 2. workdir
def test_imported_config_never_chooses_the_workdir(tmp_path):
    from app import views
    from app.layout import Explorer
    from sampler_core import SamplingConfig
    evil = f'/tmp/evil-{uuid.uuid4().hex}'
    cache = str(tmp_path / 'cache')
    ex = Explorer('shapes8', backend='npy', workdir=cache, n_pos=4)
    state = ex.state
    cfg = SamplingConfig(dataset='shapes8', backend='npy', workdir=evil, window_dims=(64, 80),
                         n_pos=3, n_neg=2)
    upload(ex.config_upload, 'config.yaml', cfg.dumps().encode())
    views.gallery(state.sampler, state.pools, 'pos', 2)     # reads pixels through the cache
    state.sampler.load_item(0)
    assert not os.path.exists(evil)
    assert state.workdir == cache and state.shared.sampler.workdir is not None
    assert os.path.realpath(state.shared.sampler.workdir).startswith(os.path.realpath(cache))
    # the rest of the config is applied, and the user is told why workdir is not
    assert (state.window_dims, state.n_pos, state.n_neg) == ((64, 80), 3, 2)
    assert 'workdir' in state.message['text'] and evil in state.message['text']


def test_state_refuses_a_workdir_change(tmp_path):
    from app.state import ExplorerState
    evil = f'/tmp/evil-{uuid.uuid4().hex}'
    state = ExplorerState(dataset='shapes8', backend='npy', workdir=str(tmp_path / 'c'), n_pos=2)
    state.workdir = evil                      # e.g. a link that names it
    state.sampler.load_item(0)
    assert state.workdir == str(tmp_path / 'c') and not os.path.exists(evil)
    assert 'workdir' in state.message['text']


# ------------------------------------------------------------------ 3. uploads per session
def test_uploads_are_per_session_and_released(tmp_path):
    import kwcoco

    from app.layout import Explorer
    from app.pools import _CACHE
    from app.uploads import UploadStore
    store = UploadStore(tmp_path / 'uploads')
    big = kwcoco.CocoDataset.demo('shapes8')
    small = kwcoco.CocoDataset.demo('shapes2')
    for d in (big, small):
        d.reroot(absolute=True)
    a = Explorer('shapes8', backend=None, n_pos=4, uploads=store)
    b = Explorer('shapes8', backend=None, n_pos=4, uploads=store)
    upload(a.upload, 'train.kwcoco.json', big.dumps().encode())
    upload(b.upload, 'train.kwcoco.json', small.dumps().encode())
    assert a.state.message is None and b.state.message is None, (a.state.message, b.state.message)
    assert a.state.dataset != b.state.dataset
    assert (len(a.state.shared.dset.imgs), len(b.state.shared.dset.imgs)) == (8, 2)
    # each link names its own data: a new session opening a's link sees a's images
    c = Explorer(a.state.dataset, roots=[store.root] + _demo_roots(), backend=None,
                 uploads=store)
    assert len(c.state.shared.dset.imgs) == 8
    path_a, path_b = a.state.dataset, b.state.dataset
    # the widgets keep no copy of the bytes
    assert not a.upload.value
    # a's session ends: its file stays while c (opened by the link) uses it
    a.release_uploads()
    assert os.path.exists(path_a)
    c.release_uploads()
    assert not os.path.exists(path_a) and not os.path.exists(os.path.dirname(path_a))
    assert not [k for k in _CACHE if k[0] == os.path.realpath(path_a)]
    assert os.path.exists(path_b)
    b.release_uploads()
    assert not os.path.exists(path_b)
    assert os.listdir(store.root) == []


def test_upload_budgets_name_their_limit(tmp_path):
    from app.uploads import UploadStore
    store = UploadStore(tmp_path, max_upload_bytes=100, max_session_uploads=2,
                        max_session_bytes=150, max_server_uploads=3, max_server_bytes=10_000)
    with pytest.raises(ValueError, match=r'larger than the upload limit of 0.0001 MB'):
        store.add('s', 'a.json', b'x' * 101)
    store.add('s', 'a.json', b'x' * 100)
    store.add('s', 'a.json', b'x' * 100)             # the same bytes again: no new budget
    assert store.usage('s') == (1, 100)
    with pytest.raises(ValueError, match=r'over 0.00015 MB, the most one session'):
        store.add('s', 'b.json', b'y' * 60)
    store.add('s', 'b.json', b'y' * 40)
    with pytest.raises(ValueError, match=r'holds 2 uploads, the most one session may hold \(2\)'):
        store.add('s', 'c.json', b'z')
    store.add('t', 'c.json', b'z')
    with pytest.raises(ValueError, match=r'server holds 3 uploads, its limit \(3\)'):
        store.add('u', 'd.json', b'w')
    for bad in ['../a.json', '', 'a/b.json', 'a\0.json']:
        with pytest.raises(ValueError, match='not a plain file name'):
            store.add('u', bad, b'{}')
    assert store.usage() == (3, 141)


def test_upload_session_budget_in_the_explorer(explorer, monkeypatch):
    """The explorer refuses an upload over its session's budget with the limit's name."""
    import kwcoco
    if not hasattr(explorer, 'uploads'):
        pytest.fail('the explorer has no per-session upload store')
    explorer.uploads.max_session_uploads = 1
    _allow_uploads(explorer)
    for n, key in enumerate(['shapes2', 'shapes4']):
        d = kwcoco.CocoDataset.demo(key)
        d.reroot(absolute=True)
        upload(explorer.upload, f'{key}.kwcoco.json', d.dumps().encode())
    assert 'the most one session may hold (1)' in explorer.state.message['text']
    assert len(explorer.state.shared.dset.imgs) == 2


# ------------------------------------------------------------------ 8. upload size
def test_upload_widgets_refuse_large_files_before_and_after_transfer(explorer):
    from app.uploads import (
        MAX_CONFIG_BYTES,
        MAX_UPLOAD_BYTES,
        UPLOAD_CHUNK_BYTES,
        WEBSOCKET_MAX_BYTES,
    )
    # the browser checks the size before sending, in chunks that fit a websocket message
    assert explorer.upload.max_file_size == f'{MAX_UPLOAD_BYTES // 1000}KB'
    assert explorer.config_upload.max_file_size == f'{MAX_CONFIG_BYTES // 1000}KB'
    for w in (explorer.upload, explorer.config_upload):
        assert w.chunk_size == UPLOAD_CHUNK_BYTES < WEBSOCKET_MAX_BYTES
    # a client that skips the check: the server drops the chunks past the limit
    from panel.models.file_dropper import UploadEvent
    w = explorer.upload
    chunk = b'x' * UPLOAD_CHUNK_BYTES
    total = MAX_UPLOAD_BYTES // UPLOAD_CHUNK_BYTES + 2
    for k in range(1, total + 1):
        w._process_event(UploadEvent(model=None, data={
            'chunk': k, 'total_chunks': total, 'name': 'big.kwcoco.json',
            'type': 'application/json', 'data': chunk}))
        assert sum(len(c) for cs in w._file_buffer.values() for c in cs) <= MAX_UPLOAD_BYTES
    assert not w.value
    assert '20 MB' in explorer.state.message['text']
    assert 'big.kwcoco.json' in explorer.state.message['text']



#: pieces of text: Markdown and HTML syntax, URLs (linkify), typography ((c), --, ...)
_PIECES = st.sampled_from(list('abcXY019 ._-:/\\<>&"\'`*[](){}#+!|~=$%@^?,;') + [
    'é', '→', 'www.x.com', 'http://a.b', '(c)', '--', '...', '<img src=x onerror=alert(1)>',
    '<script>', '&amp;', '&#60;', '$x$', '![i](x)', '<http://a>', '    '])


@settings(max_examples=300, deadline=None)
@given(text=st.lists(_PIECES, min_size=1, max_size=12).map(''.join))
def test_escape_markdown_property_any_text_is_one_paragraph_of_that_text(text):
    import re

    from app.text import escape_markdown
    assume(text == text.strip())                  # Markdown drops a paragraph's outer spaces
    out = rendered_markdown(escape_markdown(text)).strip()
    assert re.findall(r'<[^>]*>', out) == ['<p>', '</p>'], out   # no element made of the text
    assert html.unescape(out[3:-4]) == text


def test_hardening_module_doctests():
    import xdoctest
    for mod, command in (('app.uploads', 'all'), ('app.text', 'all')):
        result = xdoctest.doctest_module(mod, command=command, argv=[])
        assert result['n_failed'] == 0 and result['n_passed'] > 0, (mod, result)
