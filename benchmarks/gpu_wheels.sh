#!/usr/bin/env bash
# The pure-Python wheels benchmarks/gpu_check.sh carries to a GPU machine whose Python lacks them, downloaded here
# (with package index access) into .whl/ (git-ignored):
#
#     benchmarks/gpu_wheels.sh [PYTHON_VERSION]      # default 3.12, the GPU image's python3
#
# The GPU image (its python3 has torch, torchvision, numpy, scipy, matplotlib, scikit-image, pillow, tqdm, tabulate,
# jinja2, requests, cloudpickle, typing-extensions and pytest) lacks three of pyproject.toml's dependencies:
# cityscapesscripts (with appdirs, coloredlogs, humanfriendly, pyquaternion), pytorch-fid and submitit. All are
# pure Python (py3-none-any), a few hundred KB in all; versions are those this project is tested with. torch is
# never carried: the check uses the image's own. gpu_check.sh installs .whl/*.whl with
# `pip install --no-index --no-deps --target` into a scratch folder and puts it on PYTHONPATH.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${GPU_WHEELS_PYTHON:-python3}
WHEELS="cityscapesscripts==2.3.0 appdirs==1.4.4 coloredlogs==15.0.1 humanfriendly==10.0 pyquaternion==0.9.9
        pytorch-fid==0.3.0 submitit==1.5.4"
mkdir -p "$ROOT/.whl"
# --no-deps: each dependency the image lacks is named above; --only-binary: wheels, never a build here
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${1:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$ROOT/.whl" $WHEELS
ls -l "$ROOT/.whl"
du -sh "$ROOT/.whl"
