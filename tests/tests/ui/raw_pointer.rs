//! A raw-pointer parameter is refused, with a hint to use GuestAddr.
use vmmcall::vmmcall;

#[vmmcall("ptr")]
fn ptr(_p: *const u8) {}

fn main() {}
