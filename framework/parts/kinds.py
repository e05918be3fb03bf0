"""The kinds of input a part takes and gives, so the core can tell which parts fit together.

A dataset gives ``features`` (one vector per example: tabular columns) or ``images`` (height x
width x channels). A backbone takes one of those and gives ``features`` (an MLP's last layer) or
``feature_maps`` (a CNN's height x width x channels output); a head takes what a backbone gives.
A part registered without kinds is not checked before the run; at run time the shapes decide.
"""

FEATURES = "features"
IMAGES = "images"
FEATURE_MAPS = "feature_maps"
KINDS = (FEATURES, IMAGES, FEATURE_MAPS)

_WORDS = {FEATURES: "features", IMAGES: "images", FEATURE_MAPS: "feature maps"}


def describe(kinds) -> str:
    """``"features"`` or ``"features or feature maps"``: kinds in words."""
    if isinstance(kinds, str):
        kinds = (kinds,)
    return " or ".join(_WORDS[k] for k in kinds)


def data_kind(input_shape) -> str | None:
    """What a dataset's examples of this shape are: rank 1 features, rank 3 images."""
    return {1: FEATURES, 3: IMAGES}.get(len(input_shape))


def output_kind(shape) -> str | None:
    """What a backbone's output of this shape (no batch axis) is: features or feature maps."""
    return {1: FEATURES, 3: FEATURE_MAPS}.get(len(shape))
