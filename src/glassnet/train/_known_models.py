"""fit's speed trick for repeated calls on one model, kept in this one module.

A fit(epochs=1) loop (the scikit-learn partial_fit / Keras habit) prepares the
same model again on every call: walk() of the tree (parameter names, the
duplicate checks) and model.set_training twice (every layer scans its
attributes for children) cost 17 us of the 5-layer iris model's one-step fit
(~100 us). known_model(model) keeps what the last walk found, per live model:

* unchanged(model) reads again what the walk read, each layer's own parameters
  and children (compared by identity) and the parameters' names, without the
  bookkeeping of names and duplicates: half the walk's time. Anything the walk
  would see differently (a layer added, removed or replaced at any depth, a
  Parameter replaced or renamed) makes it False, and the model is walked anew,
  with walk()'s ConfigErrors.
* set_training(model, flag) does what model.set_training(flag) does, setting
  the flags directly on the layers that keep the default set_training (and
  Sequential's), and calling the method of any layer that overrides it.

Nothing here keeps a model alive: entries hold the layers below the model,
never the model itself, and are dropped when the model is collected.
"""

import weakref

from glassnet.nn.layers.base import Layer, _own_and_children, walk

# how set_training reaches a layer: its flag set here, or its own method called
_PLAIN, _SEQUENTIAL, _CALL = 0, 1, 2
# Sequential.set_training, known by name: containers imports train (model.fit)
_SEQUENTIAL_METHOD = ("glassnet.nn.layers.containers", "Sequential.set_training")


def _switch_kind(layer: Layer) -> int:
    method = type(layer).set_training
    if method is Layer.set_training:
        return _PLAIN  # self.training = flag, then its children
    if (method.__module__, method.__qualname__) == _SEQUENTIAL_METHOD:
        return _SEQUENTIAL  # self._training = self.training = flag, then its layers
    return _CALL  # a set_training of its own: it handles its subtree


class KnownModel:
    """What walk(model) found, and the model's training switch.

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
        self.root_kind = _switch_kind(model)
        # the layers whose flag the switch sets, and those whose method it calls;
        # the subtree of a layer with its own set_training is left to it
        pairs = zip(every_layer, self.structure, strict=True)
        kids = {id(layer): found[1] for layer, found in pairs}
        self.flags, self.sequentials, self.calls = [], [], []
        if self.root_kind != _CALL:
            todo = [child for _, child in reversed(kids[id(model)])]
            while todo:
                layer = todo.pop()
                kind = _switch_kind(layer)
                if kind == _CALL:
                    self.calls.append(layer)
                    continue
                self.flags.append(layer)
                if kind == _SEQUENTIAL:
                    self.sequentials.append(layer)
                todo.extend(child for _, child in reversed(kids[id(layer)]))

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

    def set_training(self, model: Layer, training: bool) -> None:
        """model.set_training(training), the flags set directly (see above)."""
        flag = bool(training)
        if self.root_kind == _CALL:
            model.set_training(flag)
            return
        model.training = flag
        if self.root_kind == _SEQUENTIAL:
            model._training = flag
        for layer in self.flags:
            layer.training = flag
        for layer in self.sequentials:
            layer._training = flag
        for layer in self.calls:
            layer.set_training(flag)


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
