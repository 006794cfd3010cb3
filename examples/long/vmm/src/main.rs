//! Long calls and batches, VMM side (issue 23; docs/ABI.md, "Long calls",
//! "vmmcall_batch").
//!
//! - `long_fill` fills a guest buffer with [`long_api::word`]s, one 4 KiB
//!   page per step, `rounds` times over, and returns a checksum of every
//!   word it wrote. Declared `long`: between two pages vmm-core returns to
//!   the guest when its timer interrupt is pending (or the step budget is
//!   spent), and the guest's re-executed instruction continues the call.
//! - `long_fill_once` is the same function registered without `long`: it
//!   runs to its end in one exit, the uninterrupted run the guest compares
//!   with.
//! - `long_add` is a plain call, for batches of mixed handlers.
#![no_std]
#![no_main]

// The hypervisor itself: linked for its runtime (entry, allocator, panic).
use vmm_core as _;

use long_api::{fold, result_of, word, FOLD_START, MAX_LEN, MAX_ROUNDS, PAGE};
use vmmcall::{vmmcall, Caller, Error, GuestAddr};

/// Fill `len` bytes at `addr` (page-aligned, `len` a multiple of a page,
/// at most [`MAX_LEN`]) with round `r`'s pattern for `r` in
/// `0..rounds` (at most [`MAX_ROUNDS`]), a page per step. Progress:
/// `[round, offset, checksum, 0]`, kept by the VMM.
fn fill(cx: &mut Caller, addr: GuestAddr, len: u64, rounds: u64, seed: u64) -> Result<u64, Error> {
    if !addr.get().is_multiple_of(PAGE)
        || !len.is_multiple_of(PAGE)
        || len > MAX_LEN
        || rounds > MAX_ROUNDS
    {
        return Err(Error::Invalid);
    }
    let [mut round, mut off, mut sum, _] = match cx.progress() {
        [0, 0, 0, _] => [0, 0, FOLD_START, 0],
        p => p,
    };
    let mut page = [0u8; PAGE as usize];
    while round < rounds && len != 0 {
        let mut s = sum;
        for (at, chunk) in (off..).step_by(8).zip(page.chunks_exact_mut(8)) {
            let w = word(seed, round, at);
            s = fold(s, w);
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        cx.write(GuestAddr(addr.get().wrapping_add(off)), &page)?;
        sum = s;
        off += PAGE;
        if off == len {
            off = 0;
            round += 1;
        }
        if round < rounds {
            cx.step([round, off, sum, 0])?;
        }
    }
    Ok(result_of(sum))
}

/// The long call: yields between pages.
#[vmmcall("long_fill", user, long)]
fn long_fill(
    cx: &mut Caller,
    addr: GuestAddr,
    len: u64,
    rounds: u64,
    seed: u64,
) -> Result<u64, Error> {
    fill(cx, addr, len, rounds, seed)
}

/// The same work in one exit (not `long`: its steps never yield).
#[vmmcall("long_fill_once", user)]
fn long_fill_once(
    cx: &mut Caller,
    addr: GuestAddr,
    len: u64,
    rounds: u64,
    seed: u64,
) -> Result<u64, Error> {
    fill(cx, addr, len, rounds, seed)
}

/// `a + b` (wrapping), for batches of mixed calls.
#[vmmcall("long_add", user)]
fn long_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b) & (u64::MAX >> 1)
}
