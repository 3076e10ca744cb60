"""Objects identified by a hash of what they depend on.

Example:
    >>> from sampler_core.hashid import HashIdentifiable
    >>> class Thing(HashIdentifiable):
    ...     def __init__(self, value):
    ...         super().__init__()
    ...         self.value = value
    ...     def _depends(self):
    ...         return ['thing', self.value]
    >>> Thing(1).hashid == Thing(1).hashid != Thing(2).hashid
    True
"""
from __future__ import annotations

import hashlib
import json


class HashIdentifiable:
    """Mixin giving a lazily computed, stable :attr:`hashid`.

    Subclasses implement one of:

    * ``_depends()``: a JSON-serialisable value the identity is hashed from;
    * ``_make_hashid()``: the hash string itself;
    * or set ``_hashid`` directly.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._hashid = None

    def _depends(self):
        raise NotImplementedError

    def _make_hashid(self) -> str:
        text = json.dumps(self._depends(), sort_keys=True, default=str)
        return hashlib.sha1(text.encode('utf8')).hexdigest()

    @property
    def hashid(self) -> str:
        """A hex digest that changes whenever the dependencies change."""
        if getattr(self, '_hashid', None) is None:
            self._hashid = self._make_hashid()
        return self._hashid
