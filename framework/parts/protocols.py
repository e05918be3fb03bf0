"""Evaluation protocols: how many times a run trains, on which cut of its data, with which seed.

A protocol part (``protocol=holdout|kfold|seeds``, registered through ``register_protocols``)
builds a ``Protocol``; the core trains one model per ``Round`` it gives and ranks the run by the
mean of the rounds' validation objectives (``framework.parts.objective.objective_over``).
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Round:
    """One model a protocol trains.

    Args:
        name: its name in the record and on the console, e.g. ``fold 2`` or ``seed 43``.
        seed: the seed it is built and trained with.
        validation: the rows of train+validation (pooled in that order, ``Data.pooled``) that
            validate it, the others training it; None: the data's own split.
    """

    name: str
    seed: int
    validation: Any = None


class Protocol:
    """The holdout protocol (one model, the data's own split, the run's seed); a protocol part
    subclasses it.

    Args:
        name: the part's name.
        refit: whether the kept model is a final refit on train+validation, not the round
            with the best validation score.
    """

    def __init__(self, name: str = "holdout", refit: bool = False):
        self.name = name
        self.refit = refit

    def rounds(self, data, seed: int) -> list[Round]:
        """The models to train.

        Args:
            data: the run's data (``framework.api.Data``), prepared by its task.
            seed: the run's seed.

        Returns:
            One ``Round`` per model, the first with the run's seed.

        Raises:
            UserError: the data cannot be cut as the protocol asks.
        """
        return [Round(self.name, seed)]

    def settings(self) -> dict:
        """What the record's ``protocol`` block says of its settings, e.g. ``{"folds": 5}``."""
        return {}

    @property
    def single(self) -> bool:
        """Whether it trains the one model of a plain run (the holdout)."""
        return type(self) is Protocol
