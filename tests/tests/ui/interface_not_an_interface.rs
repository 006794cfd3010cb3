//! `#[vmmcall]` on an impl of a trait that no `interface!` declared.
use vmmcall::{Caller, Error};

trait Mine {
    fn hello(cx: &mut Caller<'_>, arg1: u64) -> Result<u64, Error>;
}

struct Vmm;

#[vmmcall::vmmcall]
impl Mine for Vmm {
    fn hello(_cx: &mut Caller<'_>, arg1: u64) -> Result<u64, Error> {
        Ok(arg1)
    }
}

fn main() {}
