//! Compiles the one thing stable Rust cannot express: a thread-local block with the initial-exec
//! TLS model (a fixed offset from %fs, no `__tls_get_addr` call that could itself call malloc).
fn main() {
    println!("cargo:rerun-if-changed=src/tls.c");
    cc::Build::new()
        .file("src/tls.c")
        .flag("-ftls-model=initial-exec")
        .flag("-fvisibility=hidden")
        .opt_level(2)
        .compile("memshim_tls");
}
