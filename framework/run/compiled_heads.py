"""Compiled heads kept for reuse: runs in one process (a search's trials) that train heads of the
same layers on cached features fit one compiled model, traced once, instead of a new one each.

Tracing a new model's train and test steps costs more than a head's whole fit on cached features.
A head reused here starts from the weights of the head the run built (its own seed's), with the
optimizer as a new compile leaves it and the run's learning rate, so that it trains as that head
would: same graph, same starting values, same results.
"""

import json
from collections import OrderedDict

import numpy as np


class CompiledHeads:
    """Compiled head models by what their train step depends on.

    Args:
        size: how many compiled heads to keep (the least recently used go first).
    """

    def __init__(self, size: int = 8):
        self.size = size
        self._heads = OrderedDict()  # key -> (compiled head, its optimizer's starting values)
        self.reused = 0  # fits that found their head compiled

    def compiled(self, head, compile_head, learning_rate: float, compiled_with: dict):
        """A compiled head to fit in place of ``head``, starting from ``head``'s weights.

        Args:
            head: the run's head model, built and not compiled.
            compile_head: compiles a model as the run does (``compile_head(model)``).
            learning_rate: the optimizer's learning rate (a variable: set on a reused head).
            compiled_with: everything else the compiled train step depends on (the optimizer's
                other settings, the loss and metrics, the compile options), as plain values.

        Returns:
            ``head`` itself, compiled, or a compiled head of the same layers with ``head``'s
            weights; after the fit, ``take_back`` gives ``head`` the trained weights.
        """
        key = json.dumps([_layers(head), compiled_with], sort_keys=True)
        if key in self._heads:
            model, start = self._heads[key]
            self._heads.move_to_end(key)
            if _copy(head.variables, model.variables):
                for variable, value in zip(model.optimizer.variables, start):
                    variable.assign(value)
                model.optimizer.learning_rate = learning_rate
                self.reused += 1
                return model
        compile_head(head)
        # Built now, not at the first step, to keep its starting values for the next fits.
        head.optimizer.build(head.trainable_variables)
        start = [np.array(v) for v in head.optimizer.variables]
        self._heads[key] = (head, start)
        if len(self._heads) > self.size:
            self._heads.popitem(last=False)
        return head

    @staticmethod
    def take_back(head, fitted):
        """Gives the run's ``head`` the weights of the compiled head that trained in its place."""
        if fitted is not head:
            _copy(fitted.variables, head.variables)


def _layers(model) -> str:
    """The model's layers and connections, without their names (unique per model)."""
    text = model.to_json()
    for number, layer in enumerate(model.layers):
        text = text.replace(json.dumps(layer.name), json.dumps(f"#{number}"))
    return text.replace(json.dumps(model.name), '"#model"')


def _copy(source, target) -> bool:
    """Assigns the values of one model's variables to another's, if they match one for one."""
    if len(source) != len(target) or any(
        s.shape != t.shape or s.dtype != t.dtype for s, t in zip(source, target)
    ):
        return False
    for s, t in zip(source, target):
        t.assign(s)
    return True
