//! `unsafe fn` is refused, at `unsafe`.
use vmmcall::vmmcall;

#[vmmcall("danger")]
unsafe fn danger(x: u64) -> u64 {
    x
}

fn main() {}
