/* malloc/free pairs of random sizes (16 B - 4 KiB), in T threads; prints the process CPU time
 * (user + system, getrusage) in seconds. Usage: bench-malloc THREADS PAIRS_PER_THREAD */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static long pairs;

static void *run(void *arg) {
    uint32_t x = 2463534242u + (uint32_t)(uintptr_t)arg * 7919u;
    void *slots[64] = {0};
    for (long i = 0; i < pairs; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        unsigned k = x & 63;
        free(slots[k]);
        slots[k] = malloc(16 + (x >> 8) % (4096 - 16 + 1));
        *(volatile char *)slots[k] = 1;
    }
    for (int k = 0; k < 64; k++) free(slots[k]);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    pairs = argc > 2 ? atol(argv[2]) : 20000000;
    pthread_t t[64];
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, run, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%.4f\n", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    return 0;
}
