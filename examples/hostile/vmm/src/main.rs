//! Hostile guests, VMM side: handlers whose parameters are narrow types
//! (`u8`, `i8`, `i16`, `i32`, `u32`, `bool`) and guest buffers
//! (`GuestAddr` + length), so that the guest's storm can predict every
//! answer from docs/ABI.md alone: `-EINVAL` for an argument that does not
//! fit, `-EFAULT` for memory it may not touch, `-EPERM` from ring 3,
//! `-ENOSYS` past the last number, `-ERANGE`/`-EOVERFLOW` as documented
//! per handler below.
//!
//! Numbers follow the name order (with vmm-core's built-in `exit`):
//! `echo_u8` 1, `exit` 2, `fill` 3, `flag` 4, `k_add` 5, `k_echo64` 6,
//! the 255-byte `long_name_xxx...` 7, `mix` 8, `name_len` 9, `sum` 10,
//! `whoami` 11. The guest checks this order itself.
#![no_std]
#![no_main]

// The hypervisor itself: boot, backends, runtime.
use vmm_core as _;
use vmmcall::{vmmcall, Caller, Error, GuestAddr};

/// Largest buffer `sum` reads (larger lengths are `-ERANGE`).
const SUM_MAX: u32 = 65536;
/// Largest buffer `fill` writes (larger lengths are `-ERANGE`).
const FILL_MAX: usize = 4096;
/// `sum` reads guest memory in chunks of this many bytes.
const CHUNK: usize = 512;

/// Returns its `u8` argument: anything above 255 is `-EINVAL`.
#[vmmcall("echo_u8", user)]
fn echo_u8(a: u8) -> u8 {
    a
}

/// Packs five narrow arguments into a result that never reaches the error
/// range (bit 63 is always 0).
#[vmmcall("mix", user)]
fn mix(a: u8, b: i16, c: bool, d: u32, e: i8) -> u64 {
    u64::from(a)
        ^ (u64::from(b as u16) << 8)
        ^ (u64::from(c) << 24)
        ^ (u64::from(e as u8) << 25)
        ^ (u64::from(d) << 31)
}

/// Returns its argument; ring 0 only. Values in the error range come back
/// as `-EOVERFLOW`.
#[vmmcall("k_echo64")]
fn k_echo64(x: u64) -> u64 {
    x
}

/// `a + b` for sign-extended `i32`s; a negative sum is `-ERANGE`. Ring 0
/// only.
#[vmmcall("k_add")]
fn k_add(a: i32, b: i32) -> Result<u32, Error> {
    u32::try_from(i64::from(a) + i64::from(b)).map_err(|_| Error::Range)
}

/// Not `b`.
#[vmmcall("flag", user)]
fn flag(b: bool) -> bool {
    !b
}

/// The caller's privilege level.
#[vmmcall("whoami", user)]
fn whoami(cx: &mut Caller) -> u8 {
    cx.cpl()
}

/// The byte sum of `len` bytes at `addr`, read with the caller's
/// privilege in chunks of 512 bytes. `len` above 65536 is `-ERANGE`.
#[vmmcall("sum", user)]
fn sum(cx: &mut Caller, addr: GuestAddr, len: u32) -> Result<u64, Error> {
    if len > SUM_MAX {
        return Err(Error::Range);
    }
    let len = len as usize;
    let mut buf = [0u8; CHUNK];
    let mut total = 0u64;
    let mut done = 0usize;
    while done < len {
        let n = (len - done).min(CHUNK);
        let at = addr.checked_add(done as u64).ok_or(Error::Fault)?;
        let chunk = buf.get_mut(..n).ok_or(Error::Invalid)?;
        cx.read(at, chunk)?;
        total += chunk.iter().map(|&b| u64::from(b)).sum::<u64>();
        done += n;
    }
    Ok(total)
}

/// Writes `len` copies of `byte` at `dst` with the caller's privilege, in
/// one access; returns `len`. `len` above 4096 is `-ERANGE`.
#[vmmcall("fill", user)]
fn fill(cx: &mut Caller, dst: GuestAddr, len: u64, byte: u8) -> Result<u64, Error> {
    let n = usize::try_from(len)
        .ok()
        .filter(|&n| n <= FILL_MAX)
        .ok_or(Error::Range)?;
    let buf = [byte; FILL_MAX];
    cx.write(dst, buf.get(..n).ok_or(Error::Range)?)?;
    Ok(len)
}

/// The length of the NUL-terminated name at `addr` (at most 255 bytes):
/// `-EFAULT` if it cannot be read up to its NUL, `-EINVAL` if there is
/// no NUL within 256 bytes.
#[vmmcall("name_len", user)]
fn name_len(cx: &mut Caller, addr: GuestAddr) -> Result<u64, Error> {
    let mut buf = [0u8; vmmcall::abi::NAME_BUF_LEN];
    Ok(cx.read_name(addr, &mut buf)?.len() as u64)
}

/// A handler whose name has the longest length allowed, 255 bytes.
#[vmmcall("long_name_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", user)]
fn long_name() -> u16 {
    255
}
