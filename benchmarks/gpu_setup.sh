#!/bin/sh
# Installs what benchmarks/gpu.py needs on a GPU machine that has JAX (CUDA) and Python 3.12 but
# no TensorFlow and no network: the pure-Python wheels kept in .whl/ (keras, hydra-core,
# omegaconf, antlr4, namex, optree, typing_extensions; setuptools and wheel to build this
# project, wheel 0.45 being the last that needs no packaging) and this project itself, all
# without dependencies, into one folder (default /tmp/site). Run it from the repository root,
# then the benchmark:
#
#   sh benchmarks/gpu_setup.sh /tmp/site
#   PYTHONPATH=/tmp/site KERAS_BACKEND=jax python3 benchmarks/gpu.py --out gpu.md
#
# The machine's own packages serve the rest (numpy, jax, jaxlib, ml-dtypes, h5py, absl-py, rich,
# packaging, pyyaml, pluggy, scikit-learn, scipy, matplotlib, pillow). Fill .whl/ on a machine
# with network (a .git/info/exclude line keeps it out of git):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl keras==3.15.1 hydra-core==1.3.8 omegaconf==2.3.1 \
#     antlr4-python3-runtime==4.9.3 namex==0.1.0 optree==0.20.0 typing_extensions==4.16.0 \
#     "setuptools>=68,<81" wheel==0.45.1
set -e
SITE=${1:-/tmp/site}
PYTHON=${PYTHON:-python3}
$PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl
# The project from this working tree: pip builds it offline, its build requirements
# (setuptools, wheel) taken from .whl/.
# (PYTHONWARNINGS: setuptools' pages of warnings about the config folders it ships as data.)
PYTHONWARNINGS=ignore $PYTHON -m pip install -q --no-index --find-links .whl --no-deps \
    --no-compile --no-cache-dir --upgrade --target "$SITE" .
