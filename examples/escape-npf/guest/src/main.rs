//! Escape attempt: the guest maps guest-physical 32 MiB, the first byte
//! past its RAM (on the host, where memory that is not the guest's lies),
//! and reads it.
//!
//! Documented outcome (vmm-core `exits.rs`): the nested tables map guest
//! RAM only, so the read is a nested page fault; the VMM never maps the
//! address, stops the guest with `vmm: guest stopped: guest touched
//! guest-physical 0x2000000, outside its RAM, at RIP ...` and exits the
//! emulator with a failure status. `expect.txt` says `outcome: stopped`.
#![no_std]
#![no_main]

use guest_rt::arch::{self, PTE_ADDR, PTE_P, PTE_PS, PTE_RW};
use guest_rt::println;

guest_rt::entry!(main);

/// Guest-physical 32 MiB: guest RAM is [0, 32 MiB).
const PAST_RAM: u64 = 32 << 20;

// The load whose RIP the VMM must report: the first instruction of
// `escape_npf_load(addr) -> u64`, which reads the u64 at `addr`.
core::arch::global_asm!(
    ".section .text.escape_npf_load, \"ax\"",
    ".global escape_npf_load",
    "escape_npf_load:",
    "mov rax, [rdi]",
    "ret",
);

extern "C" {
    /// Read the u64 at `addr`.
    fn escape_npf_load(addr: u64) -> u64;
}

fn main() {
    let cr3 = arch::read_cr3();
    // SAFETY: the VMM's initial tables (PML4 -> PDPT -> PD of 2 MiB pages)
    // are identity-mapped guest RAM; PD entry 16 (linear 32 MiB) is free.
    unsafe {
        let pml4 = (cr3 & PTE_ADDR) as *const u64;
        let pdpt = (*pml4 & PTE_ADDR) as *const u64;
        let pd = (*pdpt & PTE_ADDR) as *mut u64;
        pd.add(16)
            .write_volatile(PAST_RAM | PTE_P | PTE_RW | PTE_PS);
        arch::write_cr3(cr3);
    }
    println!(
        "escape-npf: reading guest-physical {PAST_RAM:#x} (past guest RAM) with the load at RIP {:#x}",
        escape_npf_load as *const () as usize
    );
    // SAFETY: the address is mapped (above); the VMM is expected to stop
    // the guest at the load. If it returned, the value would only be
    // printed.
    let v = unsafe { escape_npf_load(PAST_RAM) };
    println!("escape-npf: FAILED: read {v:#x} from outside guest RAM and kept running");
    guest_rt::exit(1)
}
