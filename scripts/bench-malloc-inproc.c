/* malloc/free pairs of random sizes (16 B - 4 KiB) in T threads, measured in one process: each
 * thread alternates slices that call glibc directly (__libc_malloc/__libc_free, exactly what a
 * process without the shim runs) with slices that call malloc/free (through the shim when it is
 * preloaded), in the order ABBA so neither kind always goes first. Both kinds run on the same
 * machine at the same moment, so a shared VM's drift (runs of the same binary here differ by up
 * to 40%) cancels out of the ratio instead of swamping it.
 *
 * Prints: direct CPU seconds, through CPU seconds (both summed over threads, per-thread clocks),
 * the CPU of every other thread of the process over the same window (the shim's writer), and the
 * ratio (through + other) / direct: the whole cost of the shim, its writer included.
 * Without the shim the ratio is 1.00 +- 0.005 (an A/A control scripts/bench-malloc runs).
 * Usage: bench-malloc-inproc THREADS PAIRS_PER_THREAD_PER_KIND [SLICE_PAIRS] */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

static long pairs, slice;
static double direct_s[64], through_s[64];

static double cpu(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* One slice of the benchmark loop through `alloc`/`release`; frees what it allocated, so no
 * pointer crosses to the other kind (a region pointer must not reach glibc's free). */
#define SLICE(alloc, release)                                                 \
    for (long i = 0; i < slice; i++) {                                        \
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;                              \
        unsigned k = x & 63;                                                  \
        release(slots[k]);                                                    \
        slots[k] = alloc(16 + (x >> 8) % (4096 - 16 + 1));                    \
        *(volatile char *)slots[k] = 1;                                       \
    }                                                                         \
    for (int k = 0; k < 64; k++) { release(slots[k]); slots[k] = 0; }

static void *run(void *arg) {
    int id = (int)(uintptr_t)arg;
    uint32_t x = 2463534242u + (uint32_t)id * 7919u;
    void *slots[64] = {0};
    for (long done = 0, s = 0; done < 2 * pairs; done += slice, s++) {
        int through = (s & 1) ^ ((s >> 1) & 1); /* ABBA ABBA ... */
        double t0 = cpu(CLOCK_THREAD_CPUTIME_ID);
        if (through) {
            SLICE(malloc, free)
        } else {
            SLICE(__libc_malloc, __libc_free)
        }
        double d = cpu(CLOCK_THREAD_CPUTIME_ID) - t0;
        if (through) through_s[id] += d; else direct_s[id] += d;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    pairs = argc > 2 ? atol(argv[2]) : 20000000;
    slice = argc > 3 ? atol(argv[3]) : 100000;
    if (threads < 1 || threads > 64 || pairs < 1 || slice < 1) {
        fprintf(stderr, "usage: bench-malloc-inproc THREADS(1-64) PAIRS [SLICE_PAIRS]\n");
        return 2;
    }
    free(malloc(1)); /* a shim starts its writer on its first sample, possibly here */
    double p0 = cpu(CLOCK_PROCESS_CPUTIME_ID);
    pthread_t t[64];
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, run, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double total = cpu(CLOCK_PROCESS_CPUTIME_ID) - p0, d = 0, s = 0;
    for (int i = 0; i < threads; i++) { d += direct_s[i]; s += through_s[i]; }
    double other = total - d - s;
    printf("%.4f %.4f %.4f %.4f\n", d, s, other, (s + other) / d);
    return 0;
}
