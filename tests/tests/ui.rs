//! Compile-time behaviour of `#[vmmcall]`: every misuse is a compile error
//! on the offending token (`tests/ui/*.rs` with the expected `.stderr`),
//! and correct uses compile warning-free and run (`tests/ui/pass/*.rs`).
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p
//! vmmcall-tests --test ui`, then read every changed `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
