//! An associated function (no `self`) in an `impl` block: not a free function, so not found.
use vmmcall::vmmcall;

struct Device;

impl Device {
    // No `self`, but still an associated function: not a free function.
    #[vmmcall("assoc")]
    fn assoc(x: u64) -> u64 {
        x
    }
}

fn main() {}
