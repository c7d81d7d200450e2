#!/usr/bin/env bash
# Runs the kernel tests under valgrind (memcheck) on the normal optimized build (-O3 -g, what
# users get) and counts invalid reads and writes, invalid frees and uses of uninitialised
# values that reach fastnn's code. Exit status 0 means zero such errors.
#
#   tools/valgrind.sh                       # default: the kernel tests + a short op fuzz run
#   tools/valgrind.sh tests/test_gemm.py -x # any pytest arguments
#
# Valgrind 3.19 does not emulate AVX-512: under it the CPU reports no AVX-512, so fastnn runs
# its ref and AVX2 kernels only (tests/test_guard_pages.py and `CC=clang tools/sanitize.sh`
# cover AVX-512). PYTHONMALLOC=malloc: CPython's small-object allocator would otherwise hide
# Python objects from memcheck and trip its uninitialised-value heuristics. Threads run
# serialised under valgrind, so this also takes a while (see docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)"; exit 1; }
"$PY" setup.py build_ext --inplace -q >/dev/null 2>&1

log=$(mktemp "${TMPDIR:-/tmp}/fastnn-valgrind.XXXXXX.log")
if [ "$#" -eq 0 ]; then
    set -- tests/test_gemm.py tests/test_fuzz_ops.py
    export FASTNN_FUZZ_EXAMPLES=${FASTNN_FUZZ_EXAMPLES:-100}
fi
# tools/valgrind.supp: glibc and CPython false positives (word-sized string reads).
supp=(--suppressions=tools/valgrind.supp)
start=$(date +%s)
status=0
PYTHONMALLOC=malloc PYTHONPATH=. valgrind --tool=memcheck --trace-children=yes \
    --leak-check=no --track-origins=no --num-callers=30 --error-limit=no "${supp[@]}" \
    --fullpath-after="$PWD/" --fullpath-after="$(pwd -P)/" --log-file="$log.%p" \
    "$PY" -m pytest -p no:cacheprovider -q -m "not slow and not bigmem" "$@" || status=$?
end=$(date +%s)
cat "$log".* >"$log" && rm -f "$log".*
invalid=$(grep -cE "Invalid (read|write|free)|Mismatched free|Source and destination overlap" \
    "$log" || true)
# Uninitialised-value reports count only when a frame of their stack is fastnn's own code
# (CPython's int.from_bytes and refcounting trip memcheck's heuristics at start-up).
# --fullpath-after above shows fastnn's sources as csrc/... and fastnn/..., which the awk matches.
read -r uninit uninit_fastnn < <(awk -f tools/valgrind_uninit.awk "$log")
echo "valgrind: pytest exit status $status, $((end - start)) s; invalid reads/writes/frees:" \
    "$invalid; uninitialised-value errors: $uninit ($uninit_fastnn in fastnn code); log: $log"
if [ "$invalid" != 0 ] || [ "$uninit_fastnn" != 0 ]; then
    grep -nE -A25 "Invalid (read|write|free)|uninitialised" "$log" | head -n 150
    exit 1
fi
exit "$status"
