"""The explorer's state in the page's URL query, so that a link reopens the same view.

Every config field is in the query except the inert ones
(:attr:`~sampler_core.config.SamplingConfig.INERT_FIELDS`: the version, and the
dataset hash filled on export) and ``workdir`` (the server's option: a link
never chooses where the server writes); so are the UI keys
:data:`app.state.URL_UI_KEYS`.

Panel's ``location.sync`` writes a parameter as its JSON text (a string as it
is) and reads a query value back through ``panel.util.parse_query``: digits
become an int, other numbers a float, text starting with ``[`` or ``{`` JSON,
``true`` / ``false`` a bool, an empty value is dropped, anything else stays a
string. Synced on the state directly, ``None`` would come back as the string
``'null'``, and a string such as ``'12'`` as a number. So the location syncs a
:class:`QueryLink`: one untyped parameter per query key holding the query text
of the state's value (:func:`encode`); what the location reads back is turned
into state values by :func:`decode` and applied to the state as one change
(refused values: the state keeps its own and says why in ``message``).

Nothing here imports Panel: ``location`` is anything with Panel's ``sync``.

Example:
    >>> from panel.io.location import Location       # what pn.state.location is
    >>> from app.state import ExplorerState
    >>> state = ExplorerState(dataset='shapes8', backend=None)
    >>> location = Location()
    >>> link = link_location(location, state)
    >>> state.param.update(scale=0.75, n_neg=None, channels='r|g|b')
    >>> fresh = ExplorerState(dataset='shapes8', backend=None)
    >>> _ = link_location(Location(search=location.search), fresh)
    >>> (fresh.scale, fresh.n_neg, fresh.channels)
    (0.75, None, 'r|g|b')
"""
from __future__ import annotations

import json
from typing import Any

import param

from app.state import URL_UI_KEYS
from sampler_core.config import SamplingConfig

#: config fields kept in the URL: all but the inert ones and the server's workdir
URL_CONFIG_KEYS = tuple(k for k in SamplingConfig.FIELDS
                        if k not in SamplingConfig.INERT_FIELDS and k != 'workdir')
#: every key of the query
URL_KEYS = URL_CONFIG_KEYS + tuple(URL_UI_KEYS)


def _reads_back_as_text(text: str) -> bool:
    """Whether Panel's ``parse_query`` gives ``text`` back unchanged (and :func:`decode`
    takes it as it is)."""
    if not text or text.isdigit() or text[0] in '[{"' or \
            text.lower() in ('true', 'false', 'null'):
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


def encode(value: Any) -> str:
    """The query text of a state value: a string as it is when it reads back unchanged,
    anything else (``None``, numbers, tuples, lists, dicts, other strings) as JSON.

    Example:
        >>> [encode(v) for v in ('square', None, 0.75, (64, 32), {'star': 2.0}, '12', '')]
        ['square', 'null', '0.75', '[64, 32]', '{"star": 2.0}', '"12"', '""']
    """
    if isinstance(value, str) and _reads_back_as_text(value):
        return value
    return json.dumps(value)


def decode(key: str, value: Any) -> Any:
    """The state value of query key ``key`` from what Panel read (``parse_query``'s
    output, or the :func:`encode` text itself).

    Config fields get the config's own coercion (lists to tuples, ...).

    Raises:
        KeyError: ``key`` is not a URL key.
        TypeError, ValueError: a value the field cannot hold, naming the key.

    Example:
        >>> decode('n_neg', 'null'), decode('channels', '"12"'), decode('pad', [0, 32])
        (None, '12', (0, 32))
    """
    if key not in URL_KEYS:
        raise KeyError(f'unknown link parameter {key!r}; known: {list(URL_KEYS)}')
    if isinstance(value, str):
        if value == 'null':
            value = None
        elif value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError(f'link parameter {key!r}: cannot read {value!r}') from None
            if not isinstance(value, str):
                raise TypeError(f'link parameter {key!r}: expected a quoted string, '
                                f'got {value!r}')
        elif value[:1] in '[{':
            try:       # parse_query leaves broken JSON as text; encode never writes it
                value = json.loads(value)
            except ValueError:
                raise ValueError(f'link parameter {key!r}: cannot read {value!r}') from None
    if key in SamplingConfig.FIELDS:
        value = SamplingConfig._coerce_value(key, value)
    return value


#: the query as Panel syncs it: one untyped parameter per key
_Query = type('LinkQuery', (param.Parameterized,),
              {k: param.Parameter(default=None) for k in URL_KEYS})


class QueryLink:
    """Keeps a state and the query parameters of its page in step (both ways).

    Attributes:
        state (app.state.ExplorerState): the state.
        query (param.Parameterized): what the location syncs; one parameter per
            :data:`URL_KEYS` entry, holding query text (or what Panel parsed from it).
    """

    def __init__(self, state):
        self.state = state
        self.query = _Query(**{k: encode(getattr(state, k)) for k in URL_KEYS})
        self._writing = False
        state.param.watch(self._to_query, list(URL_KEYS))
        # after the location's own watcher (precedence 0), so that a value the state
        # refuses is written back over the refused one
        self.query.param.watch(self._to_state, list(URL_KEYS), precedence=1)

    def _to_query(self, *events) -> None:
        self._write([e.name for e in events])

    def _write(self, names) -> None:
        """Put the state's values of ``names`` in the query (as query text)."""
        self._writing = True
        try:
            self.query.param.update(**{k: encode(getattr(self.state, k)) for k in names})
        finally:
            self._writing = False

    def _to_state(self, *events) -> None:
        if self._writing:
            return
        values, problems = {}, []
        for e in events:
            try:
                values[e.name] = decode(e.name, e.new)
            except (KeyError, TypeError, ValueError) as ex:
                problems.append(str(ex.args[0] if isinstance(ex, KeyError) else ex))
        self._apply(values, problems)
        # the query shows the state's own values (refused or unreadable ones included)
        self._write([e.name for e in events])

    def _apply(self, values: dict, problems: list) -> None:
        """Apply decoded query values to the state: the config fields as one change
        (all of them, or none when they do not make a valid config), then the UI keys;
        problems go to the state's ``message``."""
        state = self.state
        config = {k: v for k, v in values.items()
                  if k in SamplingConfig.FIELDS and v != getattr(state, k)}
        ui = {k: v for k, v in values.items() if k not in SamplingConfig.FIELDS}
        if config:
            merged = {k: v for k, v in state.config_dict().items() if k != 'version'}
            try:
                SamplingConfig(**{**merged, **config})
            except (KeyError, TypeError, ValueError) as ex:
                problems.append(str(ex.args[0] if isinstance(ex, KeyError) else ex))
                config = {}
        if config:
            state.param.update(**config)   # the state refuses what it cannot apply
        for key, value in ui.items():
            try:
                setattr(state, key, value)
            except (TypeError, ValueError) as ex:
                problems.append(str(ex))
        if problems:
            state.notify('could not apply the link: ' + '; '.join(problems))


def link_location(location, state) -> QueryLink:
    """Keep ``state`` in the query of ``location`` (``pn.state.location``): the query's
    values are applied to the state first (the link opened), then the state's values
    written to the query.

    Args:
        location (panel.io.location.Location): the page's location.
        state (app.state.ExplorerState): the session's state.

    Returns:
        the :class:`QueryLink` (keep it with the state).
    """
    link = QueryLink(state)
    location.sync(link.query, {k: k for k in URL_KEYS})
    return link
