/* The start routine of every thread the program creates through pthread_create: runs the
 * program's routine inside a cleanup handler, so the shim learns when the thread ends, however
 * it ends (return, pthread_exit, cancellation), while it still runs with the program's
 * descriptor table and before glibc counts it gone (program_threads.rs says why). C, because a
 * forced unwind (pthread_exit) must pass through this frame and run the handler, which
 * pthread_cleanup_push does with the unwinder's own mechanism. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

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


/* The shim's pthread_exit (exported, shim/exports.map). In C because glibc's pthread_exit
 * unwinds the thread's stack (a forced unwind) from here up: the shim's Rust code is built with
 * panic = "abort", and a Rust frame on that path would abort the process. The hook the shim
 * registers runs first and returns; no Rust frame is left on the stack when the unwind starts. */
static void (*before_exit)(void);
/* glibc's pthread_exit, looked up by the constructor (where dlsym is safe), or at first use. */
static void (*real)(void *);

__attribute__((visibility("hidden"))) void memshim_set_before_pthread_exit(void (*f)(void)) {
    __atomic_store_n(&real, (void (*)(void *))dlsym(RTLD_NEXT, "pthread_exit"), __ATOMIC_RELAXED);
    __atomic_store_n(&before_exit, f, __ATOMIC_RELEASE);
}

__attribute__((visibility("default"), noreturn)) void pthread_exit(void *value) {
    void (*hook)(void) = __atomic_load_n(&before_exit, __ATOMIC_ACQUIRE);
    void (*f)(void *);
    if (hook)
        hook();
    f = __atomic_load_n(&real, __ATOMIC_RELAXED);
    if (!f) {
        f = (void (*)(void *))dlsym(RTLD_NEXT, "pthread_exit");
        __atomic_store_n(&real, f, __ATOMIC_RELAXED);
    }
    if (f)
        f(value);
    /* No glibc pthread_exit (cannot happen in a process that links libc): end just this thread. */
    for (;;)
        syscall(SYS_exit, 0);
}
