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
