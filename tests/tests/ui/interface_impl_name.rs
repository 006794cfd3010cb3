//! On an interface impl, names and `user` come from the declaration.
use vmmcall::{Caller, Error};

vmmcall::interface! {
    pub mod demo {
        fn tick();
    }
}

struct Vmm;

#[vmmcall::vmmcall("tick", user)]
impl demo::Handlers for Vmm {
    fn tick(_cx: &mut Caller<'_>) -> Result<(), Error> {
        Ok(())
    }
}

fn main() {}
