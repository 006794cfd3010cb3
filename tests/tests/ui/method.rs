//! A method (`self`) is refused, at `self`.
use vmmcall::vmmcall;

struct Device;

impl Device {
    #[vmmcall("method")]
    fn method(&self, x: u64) -> u64 {
        x
    }
}

fn main() {}
