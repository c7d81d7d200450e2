/* Single-core FMA peak of this machine, in GFLOP/s, for AVX2 and AVX-512 (float32).
 *
 * Built at run time by fastnn/bench/peak.py with the system C compiler and baseline flags; each
 * ISA loop carries a target attribute, and runs only if the CPU and OS support it. Usage:
 *     peak_fma [seconds_per_isa]      -> lines "avx2 <GFLOP/s>" and "avx512 <GFLOP/s>"
 *
 * Each loop keeps independent accumulator chains, each updated by one FMA per iteration.
 * An FMA has a latency of 4 cycles and modern x86 cores issue up to 2 per cycle, so at least
 * 4 x 2 = 8 chains are needed to keep both FMA ports busy. AVX2 has 16 ymm registers: 12
 * chains plus the two constants fit (16 chains spill to the stack and measured 20% low);
 * AVX-512 has 32 zmm registers and runs 16 chains (margin for a 5-cycle latency). acc = acc * mul + add with mul slightly below 1 converges to add / (1 - mul),
 * so values stay normal (no denormal slowdown) and the result is printed so the compiler cannot
 * drop the loop. The best of several short trials is reported (noise only ever slows a trial).
 */
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS_AVX2 12
#define CHAINS_AVX512 16
#define ITERS 2000000L /* ~5 ms per trial */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

__attribute__((target("avx2,fma"))) static double trial_avx2(float *sink)
{
    __m256 acc[CHAINS_AVX2];
    const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-6f);
    for (int j = 0; j < CHAINS_AVX2; j++) acc[j] = _mm256_set1_ps((float)j);
    double t0 = now();
    for (long i = 0; i < ITERS; i++) {
#pragma GCC unroll 12 /* the chains must live in registers, not on the stack */
        for (int j = 0; j < CHAINS_AVX2; j++) acc[j] = _mm256_fmadd_ps(acc[j], mul, add);
    }
    double t = now() - t0;
    __m256 s = acc[0];
    for (int j = 1; j < CHAINS_AVX2; j++) s = _mm256_add_ps(s, acc[j]);
    *sink += _mm256_cvtss_f32(s);
    return 2.0 * 8 * CHAINS_AVX2 * ITERS / t * 1e-9;
}

__attribute__((target("avx512f"))) static double trial_avx512(float *sink)
{
    __m512 acc[CHAINS_AVX512];
    const __m512 mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-6f);
    for (int j = 0; j < CHAINS_AVX512; j++) acc[j] = _mm512_set1_ps((float)j);
    double t0 = now();
    for (long i = 0; i < ITERS; i++) {
#pragma GCC unroll 16
        for (int j = 0; j < CHAINS_AVX512; j++) acc[j] = _mm512_fmadd_ps(acc[j], mul, add);
    }
    double t = now() - t0;
    __m512 s = acc[0];
    for (int j = 1; j < CHAINS_AVX512; j++) s = _mm512_add_ps(s, acc[j]);
    *sink += _mm512_reduce_add_ps(s);
    return 2.0 * 16 * CHAINS_AVX512 * ITERS / t * 1e-9;
}

static double best_of(double (*trial)(float *), double seconds, float *sink)
{
    double best = 0.0, t0 = now();
    int n = 0;
    while (n < 3 || now() - t0 < seconds) {
        double g = trial(sink);
        if (g > best) best = g;
        n++;
    }
    return best;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.3;
    float sink = 0.0f;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        printf("avx2 %.2f\n", best_of(trial_avx2, seconds, &sink));
    if (__builtin_cpu_supports("avx512f"))
        printf("avx512 %.2f\n", best_of(trial_avx512, seconds, &sink));
    fprintf(stderr, "sink %g\n", (double)sink);
    return 0;
}
