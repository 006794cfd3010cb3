//! The reserved name `get_vmmcall_number` (function 0) is refused.
use vmmcall::vmmcall;

#[vmmcall("get_vmmcall_number")]
fn get_vmmcall_number() -> u64 {
    0
}

fn main() {}
