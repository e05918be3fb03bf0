"""Features of a frozen backbone, extracted once and kept on disk, for head-only stages.

An entry is keyed by everything that decides the features: the dataset's config and
fingerprint, the backbone's config and builder, its weights file (or the run's seed, for random
weights), the input shape, the Keras version and a 16-bit precision (features are stored as
float32 whatever the precision). So every job of a sweep over head settings
reuses one extraction, and a change in any of these makes a new entry. Entries are written
atomically and checked on reading; an entry that fails the check is rebuilt, never used.
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
from omegaconf import OmegaConf

from framework.errors import UserError
from framework.run.evaluation import predict_with_labels

SPLITS = ("train", "validation", "test")


def cache_key(cfg, data, backbone_part) -> str | None:
    """The key of a run's features, or None when the data cannot be identified.

    A backbone without pretrained weights (``weights`` null, or no such setting) is initialized
    at random from the run's seed, so the seed is part of its key.

    Args:
        cfg: the run config.
        data: the loaded dataset.
        backbone_part: the registry record of the backbone (its builder identifies the code).
    """
    identity = {
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
        "data": data.fingerprint,
        "backbone": OmegaConf.to_container(cfg.backbone, resolve=True),
        "builder": _builder_name(backbone_part.builder),
        "input_shape": list(data.input_shape),
        "keras": keras.__version__,
    }
    if data.fingerprint is None:
        splits = [getattr(data, s) for s in SPLITS if getattr(data, s) is not None]
        if not all(isinstance(s, tuple) for s in splits):
            return None
        digest = hashlib.sha256()
        for x, y in splits:
            digest.update(np.ascontiguousarray(x).tobytes())
            digest.update(np.ascontiguousarray(y).tobytes())
        identity["arrays"] = digest.hexdigest()
    precision = OmegaConf.select(cfg, "trainer.precision", default="float32")
    if precision != "float32":  # features computed in 16 bits are not the float32 ones
        identity["precision"] = precision
    weights = cfg.backbone.get("weights")
    if weights is None:  # random initialization (or no weights setting): seeded by the run
        identity["seed"] = cfg.seed
    if isinstance(weights, str) and Path(weights).is_file():
        st = Path(weights).stat()
        identity["weights_file"] = [str(Path(weights).resolve()), st.st_size, st.st_mtime_ns]
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_or_extract(backbone, data, key: str, cache_dir: Path):
    """Features and labels of every split, from the cache or extracted (and then stored).

    Returns:
        ``({split: (features, labels)}, hit)``; ``hit`` is True when read from the cache.

    Raises:
        UserError: the cache cannot be written; found before the extraction.
    """
    entry = Path(cache_dir) / key
    features = _load(entry)
    if features is not None:
        return features, True
    tmp = _reserve(entry)
    try:
        features = extract(backbone, data)
        _store(tmp, entry, features)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return features, False


def extract(backbone, data) -> dict:
    """Runs the backbone over every split once (the training split in its fixed order).

    Features come back as float32 whatever the dtype policy: NumPy cannot save bfloat16, and
    widening 16-bit features loses nothing (the head casts them back to its input's dtype).
    """
    features = {}
    for split in SPLITS:
        source = getattr(data, split)
        if split == "train" and data.train_in_order is not None:
            source = data.train_in_order
        if source is None:
            continue
        if isinstance(source, tuple):
            x, y = source
            x, y = backbone.predict(x, verbose=0), np.asarray(y)
        else:
            x, y = predict_with_labels(backbone, source)
        features[split] = (np.asarray(x, dtype=np.float32), y)
    return features


def _reserve(entry: Path) -> Path:
    """A new temporary folder beside ``entry`` (unique to this process and call), with what stood
    at ``entry`` (an unusable entry, a file) removed: an unwritable cache is found before the
    extraction, not after it."""
    folder = entry.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{entry.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
        )
    except OSError as e:
        reason = "it is a file, not a folder" if folder.is_file() else e.strerror or str(e)
        raise _unwritable(folder, reason) from None
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _unwritable(entry, f"what is there cannot be replaced: {e.strerror or e}") from None
    return tmp


def _unwritable(path: Path, reason: str) -> UserError:
    return UserError(
        f"cannot write the feature cache at {path} ({reason}); set "
        "trainer.feature_cache.dir=<a writable folder> or "
        "trainer.feature_cache.enabled=false"
    )


def _store(tmp: Path, entry: Path, features: dict):
    """Writes the features into ``tmp``, then renames it to ``entry`` (atomic: readers see a
    whole entry or none)."""
    try:
        files = {}
        for split, (x, y) in features.items():
            for suffix, array in (("x", x), ("y", y)):
                name = f"{split}_{suffix}.npy"
                np.save(tmp / name, array)
                files[name] = _sha256(tmp / name)
        (tmp / "meta.json").write_text(json.dumps({"files": files}))
    except OSError as e:  # e.g. a full disk: the features are extracted, the run goes on
        print(
            f"warning: the feature cache entry {entry} could not be written "
            f"({e.strerror or e}); the run goes on without it",
            file=sys.stderr,
        )
        return
    try:
        os.rename(tmp, entry)
    except OSError:  # another job stored the same entry first
        pass


def _load(entry: Path):
    """The features of a usable entry; None (with a warning for an unusable one) otherwise."""
    if not (entry.exists() or entry.is_symlink()):
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text())
        files = meta.get("files") if isinstance(meta, dict) else None
        if not isinstance(files, dict):
            raise ValueError("meta.json does not list the files")
        splits = [s for s in SPLITS if f"{s}_x.npy" in files]
        expected = {f"{s}_{suffix}.npy" for s in splits for suffix in "xy"}
        if set(files) != expected or not {"train", "validation"} <= set(splits):
            raise ValueError("meta.json does not list the train and validation features")
        for name, digest in files.items():
            if _sha256(entry / name) != digest:
                raise ValueError(f"{name} does not match its checksum")
        features = {}
        for split in splits:
            x = np.load(entry / f"{split}_x.npy")
            y = np.load(entry / f"{split}_y.npy")
            if x.dtype != np.float32:  # an entry written before features were stored as float32
                raise ValueError(f"{split}: {x.dtype} features, not float32")
            if len(x) != len(y):
                raise ValueError(f"{split}: {len(x)} features for {len(y)} labels")
            features[split] = (x, y)
        return features
    except (OSError, ValueError, EOFError) as e:  # JSON and encoding errors are ValueErrors
        print(
            f"warning: feature cache entry {entry} is unusable ({e}); rebuilding it",
            file=sys.stderr,
        )
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _builder_name(builder) -> str:
    if isinstance(builder, str):
        return builder
    return f"{builder.__module__}:{builder.__qualname__}"
