"""The ``image_folder`` dataset: a folder of class sub-folders of images, read with tf.data.

Two layouts, as with Keras' flow_from_directory:

- ``PATH/train/<class>/...`` and ``PATH/validation/<class>/...``, optionally ``PATH/test/<class>``
  (without ``validation/``, ``validation_split`` takes a seeded fraction of ``train/``);
- ``PATH/<class>/...`` with ``validation_split`` set: one folder split by a seeded fraction.

Class names are the sub-folder names, sorted. Unreadable files are found up front and skipped
with one warning.
"""

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from framework.api import (
    IMAGE_EXTENSIONS,
    IMAGES,
    Data,
    UserError,
    hookimpl,
    is_readable,
    setting,
)
from framework_plugins.datasets import image_data

SPLITS = ("train", "validation", "test")
COLOR_MODES = {"rgb": 3, "grayscale": 1}
# cache: auto keeps a split's decoded images in memory up to this size (uint8 pixels).
AUTO_CACHE_BYTES = 1 << 30
# How many skipped files the warning and the run's report name.
SHOWN_SKIPPED = 5


@dataclass
class ImageFolderConfig(image_data.ImageDataConfig):
    path: str = "???"
    # [height, width] images are resized to: the backbone's input_size (150x150 for a backbone
    # without one).
    target_size: list[int] | None = image_data.BACKBONE_INPUT_SIZE
    # rgb or grayscale.
    color_mode: str = setting("rgb", choices=COLOR_MODES)
    # Resize method: bilinear, nearest, bicubic, area, ...
    interpolation: str = setting("bilinear", choices=image_data.INTERPOLATIONS)
    # Fraction held out for validation when there is no validation/ folder (stratified, seeded).
    validation_split: float | None = setting(None, above=0, below=1)
    # Keep decoded images after the first epoch: auto (in memory when they take at most
    # 1 GiB, else none), memory, a directory for cache files, or null (decode every epoch).
    cache: str | None = "auto"


def build_image_folder(cfg, ctx) -> Data:
    """Images in class sub-folders (train/ and validation/, or one folder split by a fraction)."""
    root = Path(cfg.path).expanduser()
    if root.is_file():
        raise UserError(
            f"dataset.path={cfg.path!r} is a file, not a folder of class folders (or "
            "of train/ and validation/ folders of them)"
        )
    if not root.is_dir():
        raise UserError(f"image folder not found. Received: dataset.path={cfg.path!r}")
    size = image_data.image_size(cfg.target_size, ctx, (150, 150), "target_size")
    batch = image_data.batch_size(cfg, ctx)

    class_names, listed, skipped = _list_splits(root, cfg)
    one_hot = image_data.one_hot_labels(cfg.class_mode, len(class_names))

    paths, labels = {}, {}
    for split, by_class in listed.items():
        paths[split] = [p for name in class_names for p in by_class.get(name, [])]
        labels[split] = [i for i, name in enumerate(class_names) for _ in by_class.get(name, [])]

    def pipeline(split, shuffle, name):
        return image_data.file_dataset(
            paths[split],
            labels[split],
            size=size,
            channels=COLOR_MODES[cfg.color_mode],
            interpolation=cfg.interpolation,
            batch=batch,
            num_classes=len(class_names),
            one_hot=one_hot,
            shuffle=shuffle,
            seed=ctx.seed,
            cache=_cache_target(cfg, name, root, paths[split], size, ctx.seed if shuffle else None),
        )

    datasets = {split: pipeline(split, cfg.shuffle and split == "train", split) for split in paths}
    info = {
        "path": str(root),
        **image_data.split_counts_info(labels, class_names),
        "image_size": list(size),
        "skipped": len(skipped),
        "skipped_files": [_relative(root, p) for p in skipped[:SHOWN_SKIPPED]],
    }
    return Data(
        class_names=class_names,
        train=datasets["train"],
        validation=datasets["validation"],
        test=datasets.get("test"),
        input_shape=(*size, COLOR_MODES[cfg.color_mode]),
        info=info,
        # A cache file of its own: the shuffled training split caches its images permuted.
        train_in_order=pipeline("train", False, "train_in_order") if cfg.shuffle else None,
        fingerprint=_fingerprint(root, paths),
    )


def _fingerprint(root: Path, paths: dict[str, list[Path]]) -> str:
    """A hash of every file's split, path, size and modification time: changes when data does."""
    digest = hashlib.sha256()
    for split, files in sorted(paths.items()):
        for p in files:
            st = p.stat()
            digest.update(f"{split}|{_relative(root, p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _list_splits(root: Path, cfg):
    """The class names, the readable images of each split by class, and the skipped files."""
    folders = _split_folders(root, cfg.validation_split)
    class_names = _class_names(folders["train"])
    listed = {split: _list_images(folder, class_names) for split, folder in folders.items()}
    skipped = _drop_unreadable(listed)
    if skipped:
        # One line on stderr, like the framework's errors: the run goes on.
        print(_skipped_message(root, skipped), file=sys.stderr)
    for split, by_class in listed.items():
        _check_not_empty(folders[split], by_class)
    if "validation" not in listed:
        listed["train"], listed["validation"] = _split_off(
            listed["train"], cfg.validation_split, cfg.seed
        )
        if not any(listed["validation"].values()):
            raise UserError(
                f"dataset.validation_split holds out no image of {folders['train']}; raise it. "
                f"Received: validation_split={cfg.validation_split}"
            )
    return class_names, listed, skipped


def _split_folders(root: Path, validation_split) -> dict[str, Path]:
    """The folder of each split present: ``train`` always, ``validation`` and ``test`` if found."""
    if validation_split is not None and not 0 < validation_split < 1:
        raise UserError(
            "dataset.validation_split must be between 0 and 1, or null. Received: "
            f"validation_split={validation_split}"
        )
    present = {split: root / split for split in SPLITS if (root / split).is_dir()}
    if "train" not in present:
        if present or validation_split is None:
            raise UserError(
                f"no train/ folder in {root}: give train/ and validation/ class folders, or set "
                "dataset.validation_split to split one folder of class folders"
            )
        return {"train": root}  # one folder of class folders, split by validation_split
    if "validation" in present and validation_split is not None:
        raise UserError(
            f"{root} has a validation/ folder, so dataset.validation_split does not apply; set "
            f"it to null. Received: validation_split={validation_split}"
        )
    if "validation" not in present and validation_split is None:
        raise UserError(
            f"no validation/ folder in {root}: add one, or set dataset.validation_split to hold "
            "out part of train/"
        )
    return present


def _class_names(train: Path) -> list[str]:
    names = _sub_folders(train)
    if len(names) < 2:
        found = f" ({names[0]})" if names else ""
        raise UserError(
            f"{train} has {len(names)} class folder{found}; a classifier needs at least 2"
        )
    return names


def _sub_folders(folder: Path) -> list[str]:
    # Hidden folders (.ipynb_checkpoints, .git) are not classes.
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _list_images(folder: Path, class_names: list[str]) -> dict[str, list[Path]]:
    """Image files by class name, sorted, searched recursively in each class folder."""
    names = _sub_folders(folder)
    unknown = sorted(set(names) - set(class_names))
    if unknown:
        raise UserError(
            f"{folder / unknown[0]} is not a class of train/ ({', '.join(class_names)}); "
            "rename or remove it"
        )
    return {name: _images_in(folder / name) for name in names}


def _images_in(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [
            Path(dirpath, f)
            for f in filenames
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return sorted(found)


def _drop_unreadable(listed: dict[str, dict[str, list[Path]]]) -> list[Path]:
    """Removes unreadable files from ``listed`` in place; returns them, sorted."""
    files = [p for by_class in listed.values() for paths in by_class.values() for p in paths]
    # The checks mostly wait on disk and on PIL's C decoders, which release the GIL.
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        bad = {p for p, ok in zip(files, pool.map(is_readable, files), strict=True) if not ok}
    if bad:
        for by_class in listed.values():
            for name, paths in by_class.items():
                by_class[name] = [p for p in paths if p not in bad]
    return sorted(bad)


def _split_off(by_class: dict[str, list[Path]], fraction: float, seed: int):
    """A stratified, seeded split of each class's files into (train, validation)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    train, validation = {}, {}
    for name, paths in by_class.items():
        order = rng.permutation(len(paths))
        # Every class keeps at least one training image.
        n_val = min(round(len(paths) * fraction), len(paths) - 1)
        train[name] = sorted(paths[i] for i in order[n_val:])
        validation[name] = sorted(paths[i] for i in order[:n_val])
    return train, validation


def _check_not_empty(folder: Path, by_class: dict[str, list[Path]]):
    if not by_class:
        raise UserError(f"{folder} has no class folders")
    for name, paths in by_class.items():
        if not paths:
            raise UserError(
                f"class folder {folder / name} has no readable images "
                f"({', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)})"
            )


def _cache_target(
    cfg, name: str, root: Path, paths: list[Path], size: tuple[int, int], shuffle_seed: int | None
):
    """None, "memory", or a cache file prefix named after its content (stale caches go unused):
    the files as the feature cache knows them (names, sizes, modification times), how they are
    decoded, and their order (permuted by ``shuffle_seed``, or as listed)."""
    if cfg.cache in (None, "none"):
        return None
    if cfg.cache == "auto":
        decoded = len(paths) * size[0] * size[1] * COLOR_MODES[cfg.color_mode]
        return "memory" if decoded <= AUTO_CACHE_BYTES else None
    if cfg.cache == "memory":
        return "memory"
    key = "\n".join(
        [
            str(root.resolve()),
            _fingerprint(root, {name: paths}),
            str(size),
            cfg.color_mode,
            cfg.interpolation,
            f"shuffle seed {shuffle_seed}",
        ]
    )
    folder = Path(cfg.cache).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"dataset.cache={cfg.cache!r} cannot be made a folder of cache files "
            f"({e.strerror}); set it to a writable folder, memory, auto or "
            "null"
        ) from None
    return folder / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def _skipped_message(root: Path, skipped: list[Path]) -> str:
    shown = ", ".join(_relative(root, p) for p in skipped[:SHOWN_SKIPPED])
    more = f" and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
    return f"warning: skipped {len(skipped)} unreadable image file(s) in {root}: {shown}{more}"


def _relative(root: Path, path: Path) -> str:
    return os.path.relpath(path, root)


@hookimpl
def register_datasets(register):
    register("image_folder", build_image_folder, ImageFolderConfig(), gives=IMAGES)
