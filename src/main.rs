//! vsbox: one static multi-call binary; see `vsbox --help`.
//!
//! Its entry point is C's `main`, not Rust's: the runtime's start-up is
//! skipped for the little of it vsbox needs (vsbox::sys::start). So
//! std::env::args is empty (clippy.toml refuses it), a stack overflow is
//! a bare SIGSEGV, and a panic aborts (as release builds do anyway).

// The test harness brings its own main (this file has no tests).
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: argc and argv are what the C runtime passes to main.
    let args = unsafe { vsbox::sys::start(argc, argv) };
    std::process::exit(vsbox::dispatch::main(args))
}
