//! Workspace-level tests of `vmmcall` and its `#[vmmcall]` macro; the tests
//! themselves live in `tests/tests/`:
//!
//! - `ui.rs` runs trybuild on `tests/ui/*.rs` (each misuse of the macro must
//!   fail to compile with the committed `.stderr`) and `tests/ui/pass/*.rs`
//!   (correct uses compile warning-free and run);
//! - `duplicate_name.rs` builds the crates in `fixtures/` (a workspace of
//!   their own) to show that two hypercalls with one name fail to build,
//!   within one crate (rustc) and across crates (the linker).
