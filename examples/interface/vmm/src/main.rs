//! The interface example, VMM side: the `demo` interface
//! (`examples/interface/api`) implemented once, checked by the compiler
//! against its declaration.
//!
//! `#[vmmcall] impl demo::Handlers for Demo` registers every handler in
//! the same linker-section slice as `#[vmmcall("name")]` does: a handler
//! missing from the impl, or one whose parameters or result differ from the
//! declaration, does not compile. Buffers arrive typed: `GuestBuf` for
//! `&[u8]` (read only), `GuestBufMut` for `&mut [u8]`, both bounded by the
//! length the guest passed.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use interface_api::{demo, BUFFER_MAX};
use vmm_core::println;
use vmmcall::{vmmcall, Caller, Error, GuestBuf, GuestBufMut};

/// The VMM's implementation of `demo`.
struct Demo;

/// Calls of `tick` so far.
static TICKS: AtomicU64 = AtomicU64::new(0);

#[vmmcall]
impl demo::Handlers for Demo {
    fn hello(_cx: &mut Caller<'_>, arg1: u64) -> Result<u64, Error> {
        println!("Hello BitVisor!, arg1 = {arg1}");
        Ok(10)
    }

    fn add(_cx: &mut Caller<'_>, a: u32, b: u32) -> Result<u64, Error> {
        Ok(u64::from(a) + u64::from(b))
    }

    fn checksum(cx: &mut Caller<'_>, data: GuestBuf) -> Result<u32, Error> {
        let mut buf = [0u8; BUFFER_MAX];
        let bytes = data.copy_in(cx, &mut buf)?;
        Ok(bytes.iter().map(|&b| u32::from(b)).sum())
    }

    fn fill(cx: &mut Caller<'_>, out: GuestBufMut, byte: u8) -> Result<u64, Error> {
        let pattern = [byte; BUFFER_MAX];
        let len = usize::try_from(out.len()).map_err(|_| Error::NoSpace)?;
        let data = pattern.get(..len).ok_or(Error::NoSpace)?;
        out.write_at(cx, 0, data)?;
        Ok(out.len())
    }

    fn magnitude(_cx: &mut Caller<'_>, x: i32, double: bool) -> Result<u64, Error> {
        let m = u64::from(x.unsigned_abs());
        Ok(if double { m * 2 } else { m })
    }

    fn tick(_cx: &mut Caller<'_>) -> Result<(), Error> {
        let n = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
        println!("tick {n}");
        Ok(())
    }
}
