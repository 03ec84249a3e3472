//! The shim's initial-exec TLS blocks (tls.c), reached without a call.

/// The offset from the thread pointer of an initial-exec TLS symbol defined in tls.c, the same
/// in every thread: tls.c is compiled with -ftls-model=initial-exec and the shim is loaded at
/// startup by LD_PRELOAD, so its blocks are in the static TLS area, and the loader wrote each
/// offset into a GOT slot that never changes. One load, no call (general-dynamic TLS goes
/// through __tls_get_addr, which may allocate).
macro_rules! tls_offset {
    ($sym:path) => {{
        let off: usize;
        // SAFETY: reads the symbol's GOT slot; no other memory.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + {tls}@GOTTPOFF]",
                off = out(reg) off,
                tls = sym $sym,
                options(pure, readonly, nostack),
            );
        }
        off
    }};
}

pub(crate) use tls_offset;
