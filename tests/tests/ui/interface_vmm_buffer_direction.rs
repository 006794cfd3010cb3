//! The VMM side may not take a buffer the guest lent for reading as one it
//! writes (`GuestBufMut` for `data: &[u8]`).
use vmmcall::{Caller, Error, GuestBufMut};

vmmcall::interface! {
    /// A test interface.
    pub mod demo {
        /// Doubles.
        #[user]
        fn hello(arg1: u64) -> u64;
        /// Fills.
        fn fill(out: &mut [u8], byte: u8) -> u64;
        /// Sums.
        fn checksum(data: &[u8]) -> u32;
    }
}

struct Vmm;

#[vmmcall::vmmcall]
impl demo::Handlers for Vmm {
    fn hello(_cx: &mut Caller<'_>, arg1: u64) -> Result<u64, Error> {
        Ok(arg1)
    }
    fn fill(_cx: &mut Caller<'_>, out: GuestBufMut, _byte: u8) -> Result<u64, Error> {
        Ok(out.len())
    }
    fn checksum(_cx: &mut Caller<'_>, data: GuestBufMut) -> Result<u32, Error> {
        Ok(data.len() as u32)
    }
}

fn main() {}
