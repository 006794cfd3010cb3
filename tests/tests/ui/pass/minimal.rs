//! The example from the issue, in a crate with strict lints: compiles
//! without warnings, and the handler is still a plain function.
#![deny(warnings, missing_docs, unused)]
#![forbid(unsafe_code)]

use vmmcall::vmmcall;

#[vmmcall("hello", user)]
fn hello(arg1: u64) -> u64 {
    log::info!("Hello BitVisor!, arg1 = {arg1}");
    10
}

fn main() {
    assert_eq!(hello(1), 10);
    let registry = vmmcall::Registry::global().expect("registry");
    assert_eq!(registry.len(), 1);
    assert!(registry.lookup(b"hello").is_some());
}
