#!/usr/bin/env bash
# Builds fastnn with AddressSanitizer + UndefinedBehaviorSanitizer (FASTNN_SANITIZE=1 in
# setup.py: -O0 -g -fsanitize=address,undefined) in a scratch copy of the tree and runs the
# test suite there under it. Any ASan or UBSan report aborts the run: exit status 0 means zero
# reports. Extra arguments go to pytest (default: the whole suite, tests/).
#
#   tools/sanitize.sh                          # whole suite (docs/reliability.md has figures)
#   tools/sanitize.sh tests/test_gemm.py -x    # one file
#   FASTNN_FUZZ_EXAMPLES=200 tools/sanitize.sh # fewer fuzz examples (-O0 + ASan is ~10x slower)
#   CC=clang tools/sanitize.sh                 # clang build: see below
#
# GCC's ASan does not instrument the loads and stores of x86 vector intrinsics (the AVX2 and
# AVX-512 micro-kernels and packs): only their scalar accesses are checked. Clang lowers the
# intrinsics to ordinary (masked) loads and stores, which its ASan checks, so CC=clang covers
# the vector kernels too (Debian: apt-get install clang libomp-dev). Run both.
#
# Environment: KEEP=1 keeps the scratch tree (its path is printed); PYTHON picks the
# interpreter (it needs numpy, Cython, pytest, hypothesis, like the normal test run).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
PY=${PYTHON:-python3}
CC=${CC:-gcc}

work=$(mktemp -d "${TMPDIR:-/tmp}/fastnn-sanitize.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "sanitize: scratch tree kept in $work"; else
    trap 'rm -rf "$work"' EXIT; fi

# The tracked and new (not ignored) files of the working tree, without its build outputs.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work"
cd "$work"

# -fno-sanitize-recover: the first UBSan finding aborts (halt_on_error also needs it in GCC).
# float-cast-overflow is not part of GCC's -fsanitize=undefined; add it.
export CFLAGS="${CFLAGS:-} -fno-sanitize-recover=all -fsanitize=float-cast-overflow"
echo "sanitize: building with ASan + UBSan ($CC) in $work"
CC="$CC" FASTNN_SANITIZE=1 "$PY" setup.py build_ext --inplace -q >build.log 2>&1 || {
    cat build.log; exit 1; }

# CPython itself is not instrumented: the ASan runtime must be the first library loaded.
# libstdc++ is preloaded too: without it ASan's __cxa_throw interceptor finds no real
# __cxa_throw when a C++ extension loaded later throws (matplotlib's ft2font does) and aborts.
deselect=()
case "$("$CC" --version | head -n 1)" in
    *clang*)
        LIBASAN=$("$CC" -print-file-name=libclang_rt.asan-x86_64.so)
        # clang's -fopenmp links LLVM's libomp; this benchmark test asserts libgomp.
        deselect=(--deselect "tests/test_bench_smoke.py::test_alternation_runs[ACTIVE]") ;;
    *) LIBASAN=$("$CC" -print-file-name=libasan.so) ;;
esac
LIBSTDCXX=$(gcc -print-file-name=libstdc++.so)
[ -f "$LIBASAN" ] || { echo "sanitize: libasan.so not found (got $LIBASAN)"; exit 1; }
# detect_leaks=0: CPython keeps interned objects and module state to the end (not fastnn's
# leaks; the kernel scratch is freed per thread). PYTHONMALLOC=malloc: Python objects get ASan
# red zones too (NumPy array data always comes from malloc).
export LD_PRELOAD="$LIBASAN $LIBSTDCXX"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1:alloc_dealloc_mismatch=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONMALLOC=malloc
export PYTHONFAULTHANDLER=1

log="$work/sanitize.log"
status=0
start=$(date +%s)
"$PY" -m pytest -p no:cacheprovider -q -m "not slow and not bigmem" "${deselect[@]}" "${@:-tests}" \
    >"$log" 2>&1 || status=$?
end=$(date +%s)
tail -n 15 "$log"
reports=$(grep -cE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$log" || true)
echo "sanitize: pytest exit status $status, $reports sanitizer report(s), $((end - start)) s"
if [ "$reports" != 0 ]; then
    grep -nE -A30 "ERROR: AddressSanitizer|runtime error:" "$log" | head -n 120
    cp "$log" "$repo/sanitize.log" && echo "sanitize: full log in $repo/sanitize.log"
    exit 1
fi
exit "$status"
