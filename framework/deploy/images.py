"""Reading image files the one way training and prediction share.

Light to import: TensorFlow and PIL are imported inside the functions.
"""

from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# The formats tf.io.decode_image reads; PIL opens more, which TensorFlow would then fail on.
DECODABLE_FORMATS = ("JPEG", "PNG", "BMP", "GIF")


def is_image_file(path) -> bool:
    """Whether a path has one of the image extensions (jpg, jpeg, png, bmp, gif)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_readable(path) -> bool:
    """Whether an image file is complete and in a format TensorFlow decodes, checked cheaply.

    JPEGs are decoded at 1/8 scale (the whole stream is read, so truncation shows); other
    formats are verified or, for the small ones (gif, bmp), loaded.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.format not in DECODABLE_FORMATS:
                return False
            if image.format == "JPEG":
                image.draft("RGB", (1, 1))
                image.load()
            elif image.format == "PNG":
                image.verify()  # checks every chunk's CRC up to the end
            else:
                image.load()
        return True
    except Exception:  # any failure to read means the file is skipped
        return False


def load_image(path, size: tuple[int, int], channels: int = 3, interpolation: str = "bilinear"):
    """Reads, decodes and resizes one image file, as every image-file pipeline does.

    Args:
        path: a string tensor (or str): a jpeg, png, bmp or gif file (a gif gives its first frame).
        size: ``(height, width)`` of the result.
        channels: 3 (RGB) or 1 (grayscale).
        interpolation: the resize method (a ``tf.image.resize`` method name).

    Returns:
        A ``(height, width, channels)`` uint8 tensor.
    """
    import tensorflow as tf

    return decode_image(tf.io.read_file(path), size, channels, interpolation)


def decode_image(
    contents, size: tuple[int, int], channels: int = 3, interpolation: str = "bilinear"
):
    """Decodes and resizes an image file's bytes, as ``load_image`` does a file's.

    Args:
        contents: a string tensor (or bytes): a jpeg, png, bmp or gif file's contents.
        size: ``(height, width)`` of the result.
        channels: 3 (RGB) or 1 (grayscale).
        interpolation: the resize method (a ``tf.image.resize`` method name).

    Returns:
        A ``(height, width, channels)`` uint8 tensor.
    """
    import tensorflow as tf

    image = tf.io.decode_image(contents, channels=channels, expand_animations=False)

    def resize():
        resized = tf.image.resize(image, size, method=interpolation)
        # Back to uint8 as PIL would: a cache then holds a quarter of the bytes of float32.
        return tf.saturate_cast(tf.round(resized), tf.uint8)

    # Resizing to the same size costs as much as decoding: skip it.
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    image = tf.cond(same, lambda: image, resize)
    image.set_shape((*size, channels))
    return image
