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
