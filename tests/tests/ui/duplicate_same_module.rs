//! Two handlers named "hello" in one module: refused by `cargo check` already.
use vmmcall::vmmcall;

// Within one module, a duplicate name is caught by `cargo check` already.
// (Across modules and crates it is a build/link error: see
// tests/duplicate_name.rs.)
#[vmmcall("hello")]
fn hello() {}

#[vmmcall("hello", user)]
fn hello_again() {}

fn main() {}
