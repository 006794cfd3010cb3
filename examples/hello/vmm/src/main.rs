//! The seed example, VMM side: BitVisor's `vmmcall_hello.c` as one function.
//!
//! BitVisor needs a handler that digs its argument out of the guest's RBX,
//! writes RAX by hand, and an init function that calls
//! `vmmcall_register("hello", hello)`. Here the attribute does all of it.
#![no_std]
#![no_main]

use vmm_core::println;
use vmmcall::vmmcall;

/// Prints `Hello BitVisor!, arg1 = <n>` and returns 10.
#[vmmcall("hello", user)]
fn hello(arg1: u64) -> u64 {
    println!("Hello BitVisor!, arg1 = {arg1}");
    10
}

/// Most bytes [`hello_fill`] writes in one call.
const FILL_MAX: usize = 4096;

/// For the Linux program's checks (`examples/hello/linux`): fill `len`
/// bytes at `buf` with `byte`, from any privilege level, all or nothing.
/// Returns `len`; `-ERANGE` above 4096 bytes.
#[vmmcall("hello_fill", user)]
fn hello_fill(
    cx: &mut vmmcall::Caller,
    buf: vmmcall::GuestAddr,
    len: usize,
    byte: u8,
) -> Result<u64, vmmcall::Error> {
    let pattern = [byte; FILL_MAX];
    let data = pattern.get(..len).ok_or(vmmcall::Error::Range)?;
    cx.write(buf, data)?;
    Ok(len as u64)
}

/// For the Linux program's checks: a handler ring 3 may not call (no
/// `user`), so a Linux process gets `-EPERM`.
#[vmmcall("hello_kernel")]
fn hello_kernel() -> u32 {
    1
}
