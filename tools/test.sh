#!/usr/bin/env bash
# The test command of README.md (and .ci/run): builds the manylinux wheel, installs it with the
# test extras in a fresh venv, and runs tests/ against the INSTALLED package from outside the
# source tree. Extra arguments go to pytest (e.g. -m "slow" or -k gemm).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
PY=${PYTHON:-python3}
bash tools/build_wheel.sh
venv=$(mktemp -d)/venv
"$PY" -m venv "$venv"
wheel=$(ls wheelhouse/fastnn-*.whl)
"$venv/bin/pip" install -q --disable-pip-version-check "fastnn[test] @ file://$repo/$wheel"
# torch adds the PyTorch cross-checks (tests skip without it); FASTNN_TEST_TORCH=0 skips it.
[ "${FASTNN_TEST_TORCH:-1}" = 0 ] || "$venv/bin/pip" install -q --disable-pip-version-check torch==2.13.0 \
    || echo "torch 2.13.0 not installable here: PyTorch cross-checks will be skipped"
cd "$(mktemp -d)"   # not the source tree: `import fastnn` must find the installed wheel
export FASTNN_TEST_INSTALLED=1
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider --rootdir "$repo" -c "$repo/pyproject.toml" \
    "$repo/tests" -m "not slow and not bigmem" "$@"
status=$?
set -e
# pytest exits 5 when it collected no test: that is a failure of this suite, not a pass.
if [ "$status" -eq 5 ]; then
    echo "tools/test.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
