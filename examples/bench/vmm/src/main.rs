//! The benchmark example, VMM side: the null hypercall.
//!
//! `null` takes no arguments and returns `()` (RAX = 0), so a call to it
//! costs exactly what the framework adds to a VM exit: the run loop's
//! decode, `vmexit::handle_hypercall`, `vmmcall::dispatch` (bounds check,
//! index, privilege check, call counter), the typed wrapper the macro
//! generates, and writing RAX. The guest (`examples/bench/guest`) times it
//! against a CPUID exit that the run loop answers without any of that.
//!
//! For long calls and batches (issue 23): `bench_fill`, a long call that
//! fills pages one per step, its one-exit twin `bench_fill_once`, and
//! `bench_longest`, the longest exit a `bench_fill` took.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use vmm_core as _;
use vmmcall::vmmcall;

/// The null hypercall: does nothing, returns 0.
#[vmmcall("null", user)]
fn null() {}

/// Five parameters through `#[vmmcall]`: the plain twin of `typed5`.
#[vmmcall("plain5", user)]
fn plain5(a: u64, b: u32, c: u16, d: u8, e: bool) -> Result<u64, vmmcall::Error> {
    Ok(bench_api::sum5(a, b, c, d, e))
}

/// The VMM side of `bench_api::bench`.
struct Bench;

/// `typed5`: the same body as `plain5`, registered from the declaration.
#[vmmcall]
impl bench_api::bench::Handlers for Bench {
    fn typed5(
        _cx: &mut vmmcall::Caller<'_>,
        a: u64,
        b: u32,
        c: u16,
        d: u8,
        e: bool,
    ) -> Result<u64, vmmcall::Error> {
        Ok(bench_api::sum5(a, b, c, d, e))
    }
}

/// The longest exit of a `bench_fill` call so far, in RDTSC ticks of the
/// handler's part, and its steps: `bench_longest` reads and clears them.
static LONGEST_TICKS: AtomicU64 = AtomicU64::new(0);
static LONGEST_STEPS: AtomicU64 = AtomicU64::new(0);

/// Fill `pages` pages at `addr` with `byte`, a page per step; with
/// `record`, note how long this exit's part took.
fn fill_pages(
    cx: &mut vmmcall::Caller,
    addr: vmmcall::GuestAddr,
    pages: u64,
    byte: u8,
    record: bool,
) -> Result<u64, vmmcall::Error> {
    let t0 = vmm_core::cpu::rdtsc();
    let [start, ..] = cx.progress();
    let mut done = start;
    let data = [byte; 4096];
    let result = (|| {
        while done < pages {
            cx.write(
                vmmcall::GuestAddr(addr.get().wrapping_add(done * 4096)),
                &data,
            )?;
            done += 1;
            if done < pages {
                cx.step([done, 0, 0, 0])?;
            }
        }
        Ok(pages)
    })();
    if record {
        let ticks = vmm_core::cpu::rdtsc().wrapping_sub(t0);
        if ticks > LONGEST_TICKS.load(Ordering::Relaxed) {
            LONGEST_TICKS.store(ticks, Ordering::Relaxed);
            LONGEST_STEPS.store(done - start, Ordering::Relaxed);
        }
    }
    result
}

/// The long call of `stepped/unstepped`: yields every step budget.
#[vmmcall("bench_fill", user, long)]
fn bench_fill(
    cx: &mut vmmcall::Caller,
    addr: vmmcall::GuestAddr,
    pages: u64,
    byte: u8,
) -> Result<u64, vmmcall::Error> {
    fill_pages(cx, addr, pages, byte, true)
}

/// The same work in one exit (not `long`).
#[vmmcall("bench_fill_once", user)]
fn bench_fill_once(
    cx: &mut vmmcall::Caller,
    addr: vmmcall::GuestAddr,
    pages: u64,
    byte: u8,
) -> Result<u64, vmmcall::Error> {
    fill_pages(cx, addr, pages, byte, false)
}

/// The longest exit of a `bench_fill` so far: ticks << 16 | steps; clears
/// the record.
#[vmmcall("bench_longest", user)]
fn bench_longest() -> u64 {
    let ticks = LONGEST_TICKS.swap(0, Ordering::Relaxed);
    let steps = LONGEST_STEPS.swap(0, Ordering::Relaxed);
    (ticks.min(1 << 46) << 16) | steps.min(0xFFFF)
}
