/* The start routine of every thread the program creates through pthread_create: runs the
 * program's routine inside a cleanup handler, so the shim learns when the thread ends, however
 * it ends (return, pthread_exit, cancellation), while it still runs with the program's
 * descriptor table and before glibc counts it gone (program_threads.rs says why). C, because a
 * forced unwind (pthread_exit) must pass through this frame and run the handler, which
 * pthread_cleanup_push does with the unwinder's own mechanism. */
#include <pthread.h>

/* Mirrors `Start` in program_threads.rs. The shim's two callbacks travel in the record, so
 * they need no exported name. */
struct memshim_start {
    void *(*fn)(void *);
    void *arg;
    void (*release)(void *start);
    void (*ended)(void);
};

static void ended(void *f) {
    ((void (*)(void))f)();
}

__attribute__((visibility("hidden"))) void *memshim_thread_start(void *p) {
    struct memshim_start s = *(struct memshim_start *)p;
    void *r;
    s.release(p);
    pthread_cleanup_push(ended, (void *)s.ended);
    r = s.fn(s.arg);
    pthread_cleanup_pop(1);
    return r;
}

