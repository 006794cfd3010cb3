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

/// The most bytes [`hello_long_fill`] writes in one call.
const LONG_FILL_MAX: u64 = 64 << 20;

/// For the Linux program's long call (docs/ABI.md, "Long calls"): fill
/// `len` bytes at `buf` with `byte`, one page per step, from any
/// privilege level; vmm-core returns to the guest between pages when its
/// timer interrupt is pending. Returns `len`; `-ERANGE` above 64 MiB.
#[vmmcall("hello_long_fill", user, long)]
fn hello_long_fill(
    cx: &mut vmmcall::Caller,
    buf: vmmcall::GuestAddr,
    len: u64,
    byte: u8,
) -> Result<u64, vmmcall::Error> {
    if len > LONG_FILL_MAX {
        return Err(vmmcall::Error::Range);
    }
    let [mut done, ..] = cx.progress();
    let page = [byte; 4096];
    while done < len {
        let at = buf.get().wrapping_add(done);
        let n = (4096 - at % 4096).min(len - done);
        cx.write(vmmcall::GuestAddr(at), &page[..n as usize])?;
        done += n;
        if done < len {
            cx.step([done, 0, 0, 0])?;
        }
    }
    Ok(len)
}
