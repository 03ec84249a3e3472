/* The start routine of every thread the program creates through pthread_create: runs the
 * program's routine inside a cleanup handler, so the shim learns when the thread ends, however
 * it ends (return, pthread_exit, cancellation), while it still runs with the program's
 * descriptor table and before glibc counts it gone (program_threads.rs says why). C, because a
 * forced unwind (pthread_exit) must pass through this frame and run the handler, which
 * pthread_cleanup_push does with the unwinder's own mechanism. */
#include <pthread.h>

struct memshim_start {
    void *(*fn)(void *);
    void *arg;
};

void memshim_program_thread_ended(void);
void memshim_start_release(struct memshim_start *start);

static void ended(void *unused) {
    (void)unused;
    memshim_program_thread_ended();
}

__attribute__((visibility("hidden"))) void *memshim_thread_start(void *p) {
    struct memshim_start s = *(struct memshim_start *)p;
    void *r;
    memshim_start_release(p);
    pthread_cleanup_push(ended, 0);
    r = s.fn(s.arg);
    pthread_cleanup_pop(1);
    return r;
}

