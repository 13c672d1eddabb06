#!/usr/bin/env bash
# The OpenMMLab stack for 3-D detection (MMDetection3D models, the MMEngine hook) and the nuScenes
# devkit, into the virtual environment of the pip given as $1 (torch must be installed first).
# Versions and steps as measured in INSTALL notes: mmcv 2.1.0 needs its ops (PyPI has only the
# source, built with C++20 for torch 2.14); mmdet3d and the devkit pin numpy<2, so --no-deps.
set -euo pipefail
PIP="${1:?usage: install-openmmlab.sh <venv>/bin/pip}"
PY="$(dirname "$PIP")/python"
HERE="$(cd "$(dirname "$0")/.." && pwd)"

"$PIP" install -q "mmengine==0.10.7" "mmdet==3.3.0" "setuptools>=77.0.3,<81" wheel ninja numba \
    pyquaternion cachetools shapely trimesh
if ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
    tag="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
    wheel="$(ls "$HERE"/../shared/wheels/mmcv-2.1.0-"$tag"-*.whl 2>/dev/null | head -n 1 || true)"
    if [ -n "$wheel" ]; then
        "$PIP" install -q --no-deps "$wheel"
    else
        echo "building mmcv 2.1.0 with its ops from source (about 20 minutes on 2 cores)" >&2
        build="$(mktemp -d)"
        "$PIP" download -q --no-deps --no-binary :all: "mmcv==2.1.0" -d "$build"
        tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build"
        sed -i 's/-std=c++17/-std=c++20/g' "$build"/mmcv-2.1.0/setup.py
        MMCV_WITH_OPS=1 MAX_JOBS=2 "$PIP" install -q --no-build-isolation --no-deps "$build"/mmcv-2.1.0
        rm -rf "$build"
    fi
fi
"$PIP" install -q --no-deps "mmdet3d==1.4.0" "nuscenes-devkit==1.2.0" "lyft_dataset_sdk==0.0.8"
"$PY" -c "import mmcv.ops, mmdet3d.models, nuscenes.eval.detection.algo"
