"""Features of a frozen backbone, extracted once and kept on disk, for head-only stages.

An entry is keyed by everything that decides the features: the dataset's config and
fingerprint, the backbone's config and builder, its weights file, the input shape and the Keras
version. So every job of a sweep over head settings reuses one extraction, and a change in any
of these makes a new entry. Entries are written atomically and checked on reading; an entry
that fails the check is rebuilt, never used.
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
from omegaconf import OmegaConf

from framework.evaluation import predict_with_labels

SPLITS = ("train", "validation", "test")


def cache_key(cfg, data, backbone_part) -> str | None:
    """The key of a run's features, or None when the data cannot be identified.

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
    weights = cfg.backbone.get("weights")
    if isinstance(weights, str) and Path(weights).is_file():
        st = Path(weights).stat()
        identity["weights_file"] = [str(Path(weights).resolve()), st.st_size, st.st_mtime_ns]
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_or_extract(backbone, data, key: str, cache_dir: Path):
    """Features and labels of every split, from the cache or extracted (and then stored).

    Returns:
        ``({split: (features, labels)}, hit)``; ``hit`` is True when read from the cache.
    """
    entry = Path(cache_dir) / key
    features = _load(entry)
    if features is not None:
        return features, True
    features = extract(backbone, data)
    _store(entry, features)
    return features, False


def extract(backbone, data) -> dict:
    """Runs the backbone over every split once (the training split in its fixed order)."""
    features = {}
    for split in SPLITS:
        source = getattr(data, split)
        if split == "train" and data.train_in_order is not None:
            source = data.train_in_order
        if source is None:
            continue
        if isinstance(source, tuple):
            x, y = source
            features[split] = (backbone.predict(x, verbose=0), np.asarray(y))
            continue
        features[split] = predict_with_labels(backbone, source)
    return features


def _store(entry: Path, features: dict):
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = {}
    for split, (x, y) in features.items():
        for suffix, array in (("x", x), ("y", y)):
            name = f"{split}_{suffix}.npy"
            np.save(tmp / name, array)
            files[name] = _sha256(tmp / name)
    (tmp / "meta.json").write_text(json.dumps({"files": files}))
    try:
        os.rename(tmp, entry)  # atomic: readers see a whole entry or none
    except OSError:  # another job stored the same entry first
        shutil.rmtree(tmp, ignore_errors=True)


def _load(entry: Path):
    if not entry.is_dir():
        return None
    try:
        files = json.loads((entry / "meta.json").read_text())["files"]
        for name, digest in files.items():
            if _sha256(entry / name) != digest:
                raise ValueError(f"{name} does not match its checksum")
        features = {}
        for split in SPLITS:
            if f"{split}_x.npy" in files:
                x = np.load(entry / f"{split}_x.npy")
                y = np.load(entry / f"{split}_y.npy")
                if len(x) != len(y):
                    raise ValueError(f"{split}: {len(x)} features for {len(y)} labels")
                features[split] = (x, y)
        if "train" not in features or "validation" not in features:
            raise ValueError("train or validation features missing")
        return features
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        print(f"warning: feature cache entry {entry} is unusable ({e}); rebuilding it",
              file=sys.stderr)
        shutil.rmtree(entry, ignore_errors=True)
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
