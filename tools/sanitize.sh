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
#   SANITIZE_TREE=/tmp/fnn-asan tools/sanitize.sh tests/test_gemm.py   # build once into a kept
#                                              # tree, later calls reuse it (one file per call)
#
# GCC's ASan does not instrument the loads and stores of x86 vector intrinsics (the AVX2 and
# AVX-512 micro-kernels and packs): only their scalar accesses are checked. Clang lowers the
# intrinsics to ordinary (masked) loads and stores, which its ASan checks, so CC=clang covers
# the vector kernels too (Debian: apt-get install clang libomp-dev). Run both.
#
# Environment: KEEP=1 keeps the scratch tree (its path is printed); SANITIZE_TREE=dir builds
# into dir once and reuses that build on later calls with the same CC; PYTHON picks the
# interpreter (it needs numpy, Cython, pytest, hypothesis, like the normal test run).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
PY=${PYTHON:-python3}
CC=${CC:-gcc}

if [ -n "${SANITIZE_TREE:-}" ]; then
    # A named scratch tree is kept, and reused as built if it already holds a build: run the
    # suite one file at a time without rebuilding. Delete it when the sources change.
    work=$SANITIZE_TREE
    mkdir -p "$work"
    echo "sanitize: scratch tree $work (kept)"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/fastnn-sanitize.XXXXXX")
    if [ "${KEEP:-0}" = 1 ]; then echo "sanitize: scratch tree kept in $work"; else
        trap 'rm -rf "$work"' EXIT; fi
fi

if [ -f "$work/build.ok" ] && [ "$(cat "$work/build.ok")" = "$CC" ]; then
    cd "$work"
    echo "sanitize: reusing the ASan + UBSan build ($CC) in $work"
else
    # The tracked and new (not ignored) files of the working tree, without its build outputs.
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work"
    cd "$work"
    rm -f build.ok
    # -fno-sanitize-recover: the first UBSan finding aborts (halt_on_error also needs it in
    # GCC). float-cast-overflow is not part of GCC's -fsanitize=undefined; add it.
    export CFLAGS="${CFLAGS:-} -fno-sanitize-recover=all -fsanitize=float-cast-overflow"
    echo "sanitize: building with ASan + UBSan ($CC) in $work"
    CC="$CC" FASTNN_SANITIZE=1 "$PY" setup.py build_ext --inplace -q >build.log 2>&1 || {
        cat build.log; exit 1; }
    echo "$CC" >build.ok
fi

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
# leaks; the kernel scratch is freed per thread). allocator_may_return_null=1: a malloc ASan
# cannot serve (over its 1 TB limit) returns NULL as glibc's does, so NumPy raises MemoryError
# as it would for users (tests load forged files declaring terabyte layers) instead of ASan
# aborting. log_path: reports go to files, one per process: pytest captures stderr per test
# and a report printed there would vanish with the aborted process (forked children too).
# PYTHONMALLOC=malloc: Python objects get ASan red zones too (NumPy data comes from malloc).
reports_prefix="$work/sanitizer-report"
rm -f "$reports_prefix".*
export LD_PRELOAD="$LIBASAN $LIBSTDCXX"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1:alloc_dealloc_mismatch=0:allocator_may_return_null=1:log_path=$reports_prefix"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports_prefix"
export PYTHONMALLOC=malloc
export PYTHONFAULTHANDLER=1

log="$work/sanitize.log"
status=0
start=$(date +%s)
"$PY" -m pytest -p no:cacheprovider -q -m "not slow and not bigmem" "${deselect[@]}" "${@:-tests}" \
    >"$log" 2>&1 || status=$?
end=$(date +%s)
tail -n 15 "$log"
shopt -s nullglob
report_files=("$reports_prefix".*)
reports=$(cat "$log" "${report_files[@]}" |
    grep -cE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" || true)
echo "sanitize: pytest exit status $status, $reports sanitizer report(s), $((end - start)) s"
if [ "$reports" != 0 ] || [ "${#report_files[@]}" != 0 ]; then
    cat "${report_files[@]}" "$log" | grep -nE -A30 "ERROR: AddressSanitizer|runtime error:" |
        head -n 120
    cat "$log" "${report_files[@]}" >"$repo/sanitize.log"
    echo "sanitize: full log in $repo/sanitize.log"
    exit 1
fi
exit "$status"
