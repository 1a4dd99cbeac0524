"""fit's speed trick for repeated calls on one model, kept in this one module.

A fit(epochs=1) loop (the scikit-learn partial_fit / Keras habit) prepares the
same model again on every call: walk() of the tree (parameter names, the
duplicate checks) is a large part of the 5-layer iris model's one-step fit.
known_model(model) keeps what the last walk found, per live model:

* unchanged(model) reads again what the walk read, each layer's own parameters
  and children (compared by identity) and the parameters' names, without the
  bookkeeping of names and duplicates: half the walk's time. Anything the walk
  would see differently (a layer added, removed or replaced at any depth, a
  Parameter replaced or renamed) makes it False, and the model is walked anew,
  with walk()'s ConfigErrors.

Nothing here keeps a model alive: entries hold the layers below the model,
never the model itself, and are dropped when the model is collected.
"""

import weakref

from glassnet.nn.layers.base import Layer, _own_and_children, walk


class KnownModel:
    """What walk(model) found.

    params: the model's Parameters in named_parameters() order;
    below: every layer below the model, parents before their children;
    weights_span: what fit's _FiniteWeights found of where the weights lie
    (their views and the one buffer they are consecutive slices of), kept for
    the next fit.
    """

    weights_span: tuple | None = None

    def __init__(self, model: Layer) -> None:
        named, every_layer = walk(model)  # raises ConfigError for a bad tree
        self.params = [p for _, p in named]
        self.names = [p.name for p in self.params]
        self.below = every_layer[1:]  # not the model itself: no cycle to keep it
        self.structure = [_own_and_children(layer) for layer in every_layer]
        self.checks = list(zip(self.below, self.structure[1:], strict=True))

    def every_layer(self, model: Layer) -> list[Layer]:
        """[model, every layer below it], as walk returns them."""
        return [model, *self.below]

    def unchanged(self, model: Layer) -> bool:
        """True when walk(model) would find what it found when this was made."""
        if _own_and_children(model) != self.structure[0]:
            return False
        for layer, found in self.checks:
            if _own_and_children(layer) != found:
                return False
        return [p.name for p in self.params] == self.names


# id(model) -> its KnownModel, for the models alive; an entry goes with its model
_KNOWN: dict[int, tuple[weakref.ref, KnownModel]] = {}


def known_model(model: Layer) -> KnownModel:
    """The model's KnownModel: the last one made, if the model has not changed
    since, else a new walk (which raises walk()'s ConfigErrors)."""
    entry = _KNOWN.get(id(model))
    if entry is not None and entry[0]() is model:
        known = entry[1]
        if known.unchanged(model):
            return known
    known = KnownModel(model)
    try:
        key = id(model)
        ref = weakref.ref(model, lambda _, key=key: _KNOWN.pop(key, None))
    except TypeError:  # a model class that takes no weak references: not kept
        return known
    _KNOWN[key] = (ref, known)
    return known
