//! An `impl Trait` parameter is generic: refused at the type.
use vmmcall::vmmcall;

#[vmmcall("opaque")]
fn opaque(_x: impl Into<u64>) {}

fn main() {}
