//! An interface impl holds only its handlers: a const (which could replace
//! the `Handler` the declaration built) or a macro (which could stand in
//! for a handler without being registered) is refused.
use vmmcall::{Caller, Error};

vmmcall::interface! {
    pub mod demo {
        #[user]
        fn tick();
        #[user]
        fn tock();
    }
}

fn other(_cx: &mut Caller<'_>) -> Result<u64, Error> {
    Ok(0)
}

macro_rules! tock {
    () => {
        fn tock(_cx: &mut Caller<'_>) -> Result<(), Error> {
            Ok(())
        }
    };
}

struct Vmm;

#[vmmcall::vmmcall]
impl demo::Handlers for Vmm {
    fn tick(_cx: &mut Caller<'_>) -> Result<(), Error> {
        Ok(())
    }
    const __VMMCALL_HANDLER_tick: vmmcall::Handler =
        vmmcall::Handler::typed("tick", true, other, demo::signatures::tick);
    tock!();
}

fn main() {}
