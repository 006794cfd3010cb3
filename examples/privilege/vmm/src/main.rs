//! Privilege levels and guest memory, VMM side: one handler any ring may
//! call, one that only ring 0 may call, and one that reads a guest buffer
//! with the caller's privilege.
#![no_std]
#![no_main]

// The hypervisor itself: boot, backends, runtime.
use vmm_core as _;
use vmmcall::{vmmcall, Caller, Error, GuestAddr};

/// The caller's privilege level.
#[vmmcall("whoami", user)]
fn whoami(cx: &mut Caller) -> u8 {
    cx.cpl()
}

/// Only ring 0 may call this; ring 3 gets -EPERM.
#[vmmcall("kernel_only")]
fn kernel_only() -> u32 {
    42
}

/// The sum of `len` bytes at `addr`, read with the caller's privilege: a
/// ring-3 caller naming a supervisor page gets -EFAULT.
#[vmmcall("sum", user)]
fn sum(cx: &mut Caller, addr: GuestAddr, len: u8) -> Result<u64, Error> {
    let mut buf = [0u8; 255];
    let buf = buf.get_mut(..usize::from(len)).ok_or(Error::Invalid)?;
    cx.read(addr, buf)?;
    Ok(buf.iter().map(|&b| u64::from(b)).sum())
}
