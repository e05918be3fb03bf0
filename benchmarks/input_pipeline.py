"""Images per second: the ``image_folder`` tf.data pipeline vs a plain Python-loop loader.

Writes a generated shapes tree of JPEG files to a temporary folder, then reads every image of it
with both loaders, in one run:

- ``image_folder``: the dataset plugin's pipeline (parallel decode and resize, prefetch);
- ``image_folder, cached``: the same with ``cache: memory``, whose passes after the first (the
  epochs after the first, in training) read decoded images from memory;
- ``python loop``: one image after another with PIL (open, convert, resize, to a float32 array
  in a preallocated batch), the way Keras' old ``ImageDataGenerator.flow_from_directory`` did.

Each loader makes ``--passes`` full passes, interleaved; the fastest counts (the first warms
caches and traces the tf.data graph). Run::

    python benchmarks/input_pipeline.py [--images 2000] [--size 150]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from framework.api import DataContext
from framework.runtime.backend import import_tensorflow
from framework_plugins.datasets.image_folder import ImageFolderConfig, build_image_folder
from framework_plugins.datasets.shapes import write_shapes_tree


def python_loop_batches(paths, labels, size, batch_size):
    """Batches of ``(images, labels)`` read one file at a time, as flow_from_directory did."""
    height, width = size
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        batch = np.zeros((len(chunk), height, width, 3), dtype=np.float32)
        for i, path in enumerate(chunk):
            with Image.open(path) as image:
                image = image.convert("RGB")
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.NEAREST)
                batch[i] = np.asarray(image, dtype=np.float32)
        yield batch, np.asarray(labels[start : start + batch_size])


def best_rates(loaders: dict, passes: int) -> dict:
    """The best images/s of each loader over ``passes`` full passes.

    Args:
        loaders: ``{name: make_batches}``; ``make_batches()`` yields ``(images, labels)``.
        passes: passes per loader, interleaved so that any load on the machine hits all alike.
    """
    best = dict.fromkeys(loaders, 0.0)
    for _ in range(passes):
        for name, make_batches in loaders.items():
            start, count = time.perf_counter(), 0
            for images, _ in make_batches():
                count += len(images)
            best[name] = max(best[name], count / (time.perf_counter() - start))
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="total images (default 2000)")
    parser.add_argument("--size", type=int, default=150, help="image side in pixels (150)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args(argv)
    size = (args.size, args.size)
    import_tensorflow()  # now, without its start-up logs

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        # Two classes, every image in train/ but the few validation/ needs.
        write_shapes_tree(
            tmp,
            num_classes=2,
            samples_per_class=args.images // 2,
            image_size=size,
            validation_split=0.01,
            test_split=0.0,
            image_format="jpg",
        )
        print(
            f"wrote {args.images} jpg images of {args.size}x{args.size} to {tmp} "
            f"in {time.perf_counter() - start:.1f} s"
        )

        context = DataContext(seed=0, batch_size=args.batch_size)
        pipelines = {}
        for name, cache in (("image_folder", None), ("image_folder, cached", "memory")):
            cfg = OmegaConf.structured(
                ImageFolderConfig(
                    path=tmp,
                    target_size=list(size),
                    batch_size=args.batch_size,
                    shuffle=False,
                    cache=cache,
                )
            )
            data = build_image_folder(cfg, context)
            pipelines[name] = (data.train, data.validation)
        paths = sorted(Path(tmp).glob("*/*/*.jpg"))
        labels = [data.class_names.index(p.parent.name) for p in paths]
        for p in paths:  # all loaders then read from the page cache
            p.read_bytes()

        loaders = {
            name: lambda splits=splits: (b for s in splits for b in s.as_numpy_iterator())
            for name, splits in pipelines.items()
        }
        loaders["python loop"] = lambda: python_loop_batches(paths, labels, size, args.batch_size)
        rates = best_rates(loaders, args.passes)
    print(f"CPU cores: {os.cpu_count()}; best of {args.passes} passes over {len(paths)} images")
    for name, rate in rates.items():
        ratio = rate / rates["python loop"]
        print(f"{name + ':':<22}{rate:8.0f} images/s  {ratio:5.2f}x the python loop")
    # Training reads the data once per epoch: with the default cache (auto) the first epoch
    # decodes and the others read memory, while flow_from_directory decoded every epoch.
    epochs = 10
    training = epochs / (1 / rates["image_folder"] + (epochs - 1) / rates["image_folder, cached"])
    print(
        f"over {epochs} epochs, default cache (from the rates above): {training:8.0f} images/s "
        f"{training / rates['python loop']:5.2f}x the python loop"
    )


if __name__ == "__main__":
    main()
