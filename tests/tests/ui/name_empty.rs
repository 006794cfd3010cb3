//! An empty name is refused, at the literal.
use vmmcall::vmmcall;

#[vmmcall("")]
fn empty() {}

fn main() {}
