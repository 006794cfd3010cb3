//! `const fn` is refused, at `const`.
use vmmcall::vmmcall;

#[vmmcall("konst")]
const fn konst(x: u64) -> u64 {
    x
}

fn main() {}
