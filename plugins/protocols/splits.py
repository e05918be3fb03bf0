"""The built-in evaluation protocols: ``holdout`` (the data's own split, once), ``kfold`` (folds
over train+validation, the test split held out) and ``seeds`` (one split, several seeds)."""

from dataclasses import dataclass

from framework.api import BINARY, MULTICLASS, Protocol, Round, UserError, hookimpl, setting


@dataclass
class HoldoutConfig:
    pass


@dataclass
class KFoldConfig:
    # Folds over train+validation (the test split stays held out), each trained from scratch
    # with its own seed (the run's seed + its index): stratified by class for classification.
    folds: int = setting(5, at_least=2)
    # Keep a final model trained on train+validation, for the mean of the folds' epochs,
    # instead of the fold with the best validation score.
    refit: bool = False


@dataclass
class SeedsConfig:
    # Models trained on the same split, each from its own seed (the run's seed, +1, +2...).
    repeats: int = setting(5, at_least=2)
    # Keep a final model trained on train+validation, for the mean of the seeds' epochs,
    # instead of the seed with the best validation score.
    refit: bool = False


class KFold(Protocol):
    def __init__(self, folds: int, refit: bool):
        super().__init__("kfold", refit)
        self.folds = folds

    def rounds(self, data, seed):
        import numpy as np
        from sklearn import model_selection

        y = data.pooled_targets()
        if data.task in (BINARY, MULTICLASS):
            labels = np.argmax(y, axis=-1) if np.ndim(y) > 1 else np.asarray(y)
            counts = np.bincount(labels.astype(int), minlength=len(data.class_names))
            smallest = int(counts.min())
            if self.folds > smallest:
                name = data.class_names[int(counts.argmin())]
                raise UserError(
                    f"protocol.folds={self.folds} is more than the {smallest} train+validation "
                    f"examples of class {name!r}; set protocol.folds to at most {smallest}"
                )
            splitter = model_selection.StratifiedKFold(self.folds, shuffle=True, random_state=seed)
        else:  # regression and multilabel: plain folds
            labels = np.zeros(len(y))
            if self.folds > len(y):
                raise UserError(
                    f"protocol.folds={self.folds} is more than the {len(y)} train+validation "
                    f"examples; set protocol.folds to at most {len(y)}"
                )
            splitter = model_selection.KFold(self.folds, shuffle=True, random_state=seed)
        return [
            Round(f"fold {i}", seed + i - 1, validation)
            for i, (_, validation) in enumerate(splitter.split(labels, labels), start=1)
        ]

    def settings(self):
        return {"folds": self.folds}


class Seeds(Protocol):
    def __init__(self, repeats: int, refit: bool):
        super().__init__("seeds", refit)
        self.repeats = repeats

    def rounds(self, data, seed):
        return [Round(f"seed {seed + i}", seed + i) for i in range(self.repeats)]

    def settings(self):
        return {"repeats": self.repeats}


def build_holdout(cfg):
    """One model on the dataset's own train/validation split (the default)."""
    return Protocol()


def build_kfold(cfg):
    """k models, one per fold of train+validation; the test split held out."""
    return KFold(cfg.folds, cfg.refit)


def build_seeds(cfg):
    """n models on the same split, each from its own seed."""
    return Seeds(cfg.repeats, cfg.refit)


@hookimpl
def register_protocols(register):
    register("holdout", build_holdout, HoldoutConfig())
    register("kfold", build_kfold, KFoldConfig())
    register("seeds", build_seeds, SeedsConfig())
