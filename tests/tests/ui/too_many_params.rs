//! More than five register parameters is refused, at the extra ones.
use vmmcall::{vmmcall, Caller};

#[vmmcall("six")]
fn six(_a: u64, _b: u64, _c: u64, _d: u64, _e: u64, _f: u64) {}

// The context does not count, the register parameters do.
#[vmmcall("seven")]
fn seven(_cx: &mut Caller, _a: u8, _b: u8, _c: u8, _d: u8, _e: u8, _f: u8, _g: u8) {}

fn main() {}
