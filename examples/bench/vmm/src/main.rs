//! The benchmark example, VMM side: the null hypercall.
//!
//! `null` takes no arguments and returns `()` (RAX = 0), so a call to it
//! costs exactly what the framework adds to a VM exit: the run loop's
//! decode, `vmexit::handle_hypercall`, `vmmcall::dispatch` (bounds check,
//! index, privilege check, call counter), the typed wrapper the macro
//! generates, and writing RAX. The guest (`examples/bench/guest`) times it
//! against a CPUID exit that the run loop answers without any of that.
#![no_std]
#![no_main]

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
