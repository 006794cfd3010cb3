//! A name containing NUL is refused, at the literal.
use vmmcall::vmmcall;

#[vmmcall("hel\0lo")]
fn nul() {}

fn main() {}
