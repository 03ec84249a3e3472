/* malloc/free pairs, 16 B - 4 KiB (or the mixed 16 B - 128 KiB sizes), timed by the program's
 * own clocks.
 *
 * Used two ways:
 *  - as an executable (benches/malloc_pair.rs runs it with and without LD_PRELOAD=libmemshim.so):
 *        malloc_pair THREADS PAIRS_PER_THREAD [LEAK_MIB [large]]
 *  - built with -DPAIRS_LIB as a shared library that scripts/bench-peers loads from Python through
 *    ctypes (so Python-only tools such as memray and Fil can run the same loop):
 *        run_pairs(threads, pairs_per_thread, leak_mib)
 *        run_pairs_large(threads, pairs_per_thread, leak_mib)
 *
 * Each thread runs 50,000 warm-up pairs, then PAIRS timed pairs: p = malloc(size); touch one byte;
 * free(p), the sizes cycling through 4096 pseudo-random values in [16, 4096]. run_pairs_large's
 * sizes (issue 17's loop, where the sampled path dominates): 60% in [16, 128], 30% up to 1 KiB,
 * 9% up to 16 KiB, 1% up to 128 KiB, about 1.7 KiB on average. Reported per pair:
 * wall ns (CLOCK_MONOTONIC), thread CPU ns (CLOCK_THREAD_CPUTIME_ID) and TSC ticks (rdtsc, a
 * constant-rate reference clock, not core cycles), averaged over threads.
 *
 * LEAK_MIB > 0 first leaks that many MiB from leak_blocks() in 64 KiB blocks (never freed): the
 * known leak that bench-peers asks each tool to find. It is outside the timed loop.
 *
 * Output, one line: pairs=N threads=T wall_ns=X cpu_ns=Y tsc=Z leaked=BYTES
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#define NSIZES 4096
#define WARMUP 50000L
#define LEAK_BLOCK 65536

static size_t sizes[NSIZES];

struct job {
    long pairs;
    double wall_ns, cpu_ns, tsc;
};

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void pairs_loop(long n, unsigned start) {
    for (long i = 0; i < n; i++) {
        char *p = malloc(sizes[(start + (unsigned)i) % NSIZES]);
        if (!p) abort();
        *(volatile char *)p = (char)i;
        free(p);
    }
}

static void *worker(void *arg) {
    struct job *j = arg;
    pairs_loop(WARMUP, 0);
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    uint64_t t0 = __rdtsc();
    pairs_loop(j->pairs, 17);
    uint64_t t1 = __rdtsc();
    double c1 = now(CLOCK_THREAD_CPUTIME_ID), w1 = now(CLOCK_MONOTONIC);
    j->wall_ns = (w1 - w0) / j->pairs;
    j->cpu_ns = (c1 - c0) / j->pairs;
    j->tsc = (double)(t1 - t0) / j->pairs;
    return NULL;
}

/* The known leak: LEAK_MIB MiB in 64 KiB blocks from this function, never freed. */
__attribute__((noinline)) void *leak_blocks(long mib) {
    void *last = NULL;
    for (long i = 0; i < mib * (1048576 / LEAK_BLOCK); i++) {
        char *p = malloc(LEAK_BLOCK);
        if (!p) abort();
        p[0] = 1;
        last = p;
    }
    return last;
}

static size_t uniform(unsigned *x, size_t lo, size_t hi) {
    *x = *x * 1103515245u + 12345u;
    return lo + (*x >> 8) % (hi - lo + 1);
}

static int run(int threads, long pairs, long leak_mib) {
    if (leak_mib > 0) leak_blocks(leak_mib);
    if (threads < 1 || threads > 64) threads = 1;
    pthread_t th[64];
    struct job jobs[64];
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){.pairs = pairs};
        if (pthread_create(&th[i], NULL, worker, &jobs[i])) abort();
    }
    double wall = 0, cpu = 0, tsc = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        wall += jobs[i].wall_ns / threads;
        cpu += jobs[i].cpu_ns / threads;
        tsc += jobs[i].tsc / threads;
    }
    printf("pairs=%ld threads=%d wall_ns=%.3f cpu_ns=%.3f tsc=%.2f leaked=%ld\n", pairs, threads,
           wall, cpu, tsc, leak_mib > 0 ? leak_mib * 1048576 : 0);
    fflush(stdout);
    return 0;
}

int run_pairs(int threads, long pairs, long leak_mib) {
    unsigned x = 12345;
    for (int i = 0; i < NSIZES; i++) sizes[i] = uniform(&x, 16, 4096);
    return run(threads, pairs, leak_mib);
}

int run_pairs_large(int threads, long pairs, long leak_mib) {
    unsigned x = 12345, pick = 777;
    for (int i = 0; i < NSIZES; i++) {
        unsigned r = (unsigned)uniform(&pick, 0, 99);
        sizes[i] = r < 60 ? uniform(&x, 16, 128)
                 : r < 90 ? uniform(&x, 129, 1024)
                 : r < 99 ? uniform(&x, 1025, 16384)
                          : uniform(&x, 16385, 131072);
    }
    return run(threads, pairs, leak_mib);
}

#ifndef PAIRS_LIB
int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s THREADS PAIRS_PER_THREAD [LEAK_MIB [large]]\n", argv[0]);
        return 2;
    }
    long leak = argc > 3 ? atol(argv[3]) : 0;
    if (argc > 4 && strcmp(argv[4], "large") == 0) return run_pairs_large(atoi(argv[1]), atol(argv[2]), leak);
    return run_pairs(atoi(argv[1]), atol(argv[2]), leak);
}
#endif
