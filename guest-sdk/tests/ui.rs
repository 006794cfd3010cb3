//! What safe code can no longer do with `guest_sdk::call!`: every case in
//! `tests/ui/*.rs` is a program that would let the VMM write memory Rust
//! has not lent it (or lent it for too short a time), and must not compile.
//! The expected compiler output is in the `.stderr` next to each case.
//!
//! Regenerate it with `TRYBUILD=overwrite cargo test -p guest-sdk --test
//! ui`, then read every changed `.stderr`.

#[test]
fn safe_call_rejects_what_the_vmm_must_not_write() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
