//! `#[vmmcall]` on something that is not a function is refused.
use vmmcall::vmmcall;

#[vmmcall("thing")]
struct Thing {
    x: u64,
}

#[vmmcall("value")]
static VALUE: u64 = 1;

fn main() {}
