//! A reference parameter that is not first (`&str`) is refused, at its type.
use vmmcall::vmmcall;

#[vmmcall("greet")]
fn greet(_len: u64, _name: &str) {}

fn main() {}
