//! Compiles what stable Rust cannot express: a thread-local block with the initial-exec TLS
//! model (a fixed offset from %fs, no `__tls_get_addr` call that could itself call malloc), and
//! a thread start routine whose cleanup handler a forced unwind (`pthread_exit`) runs. Also
//! limits the exported symbols to `exports.map`.
fn main() {
    // The exported interface: exports.map (a version script) keeps every other symbol local.
    let map = concat!(env!("CARGO_MANIFEST_DIR"), "/exports.map");
    println!("cargo:rerun-if-changed=exports.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={map}");
    println!("cargo:rerun-if-changed=src/sys/tls.c");
    cc::Build::new()
        .file("src/sys/tls.c")
        .flag("-ftls-model=initial-exec")
        .flag("-fvisibility=hidden")
        .opt_level(2)
        .compile("memshim_tls");
    println!("cargo:rerun-if-changed=src/sys/thread_start.c");
    cc::Build::new()
        .file("src/sys/thread_start.c")
        .flag("-fexceptions")
        .flag("-fvisibility=hidden")
        .opt_level(2)
        .compile("memshim_thread_start");
    // The wheel's build links with zig (glibc 2.28's symbols), which would put LLVM's libunwind
    // inside the shim; naming libgcc_s's file keeps libgcc's unwinder (it finds unwind tables
    // without the loader's lock), as a native build links it. scripts/build-wheel.sh sets it.
    println!("cargo:rerun-if-env-changed=MEMSHIM_LINK_LIBGCC_S");
    if let Some(gcc_s) = std::env::var_os("MEMSHIM_LINK_LIBGCC_S").filter(|p| !p.is_empty()) {
        println!("cargo:rustc-cdylib-link-arg={}", gcc_s.to_string_lossy());
    }
}
