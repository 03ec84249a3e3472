/* Per-thread state of the shim, zero-initialised by the loader for every thread.
 * initial-exec: the offset from the thread pointer is fixed at load time, so an access is one
 * %fs-relative load with no call that could allocate (general-dynamic TLS goes through
 * __tls_get_addr, which may resize the DTV with malloc). Layout mirrors `ThreadState` in
 * thread.rs; keep them in sync. */
#include <stdint.h>

struct memshim_thread {
    uint64_t countdown;
    uint64_t rng;
    uint32_t busy;
    uint32_t tid;
    uint32_t fork_gen;
    uint32_t flags;
    uint64_t last_len;
    uint64_t last_stack[16];
};

__attribute__((visibility("hidden"))) __thread struct memshim_thread memshim_tls;

/* The thread's last native stack walk (stacks/unwind/memo.rs, which mirrors it): what it started
 * from, the stack words it read and what it found. */
struct memshim_walk_memo {
    uint64_t sp, bp, ret, generation;
    uint64_t frames, slots, uses_bp;
    uint64_t frame[16];
    uint64_t slot_addr[32];
    uint64_t slot_value[32];
};

__attribute__((visibility("hidden"))) __thread struct memshim_walk_memo memshim_walk_memo;

__attribute__((visibility("hidden"))) struct memshim_thread *memshim_thread_state(void) {
    return &memshim_tls;
}
