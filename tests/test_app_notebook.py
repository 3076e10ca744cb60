"""The example notebook runs top to bottom (nbclient) and shows the explorer inline."""
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / 'examples' / 'explorer.ipynb'


def test_notebook_example_executes_and_displays_the_explorer(tmp_path):
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name='python3',
                            resources={'metadata': {'path': str(ROOT)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == 'code' for o in cell.get('outputs', [])]
    assert not [o for o in outputs if o.get('output_type') == 'error']
    mimes = {m for o in outputs for m in o.get('data', {})}
    # the explorer displayed as a Panel / Bokeh view
    assert 'application/vnd.holoviews_exec.v0+json' in mimes, mimes
    text = '\n'.join(o.get('text', '') for o in outputs if o.get('output_type') == 'stream')
    assert 'positives,' in text


def test_notebook_explorer_object_is_a_viewer():
    import panel as pn

    from app import Explorer
    explorer = Explorer('shapes8', backend=None, n_pos=2)
    assert isinstance(explorer, pn.viewable.Viewer)
    assert explorer.__panel__() is not None
    # another Explorer has its own state
    other = Explorer('shapes8', backend=None, n_pos=3)
    assert (explorer.state.pools.n_pos, other.state.pools.n_pos) == (2, 3)


def test_notebook_explorer_takes_a_dataset_object_or_a_path(tmp_path):
    import kwcoco

    from app import Explorer
    dset = kwcoco.CocoDataset.demo('shapes8')
    by_object = Explorer(dset, backend=None, n_pos=2)
    assert by_object.state.shared.dset is dset
    assert by_object.state.to_config().dataset == dset.fpath
    by_path = Explorer(dset.fpath, backend=None, n_pos=2, roots=[dset.bundle_dpath])
    assert len(by_path.state.shared.dset.imgs) == 8 and by_path.state.message is None
