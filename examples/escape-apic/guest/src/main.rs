//! Escape attempt: a bare-metal guest on a machine of several CPUs maps
//! guest-physical `0xFEE0_0000`, where every CPU's local APIC answers, and
//! writes the interrupt command register to send the CPU with APIC ID 1 an
//! INIT (which would reset it, and the VMM running there), then a STARTUP
//! and an NMI.
//!
//! Documented outcome (docs/VMM-CORE.md, "A Linux guest on several CPUs"
//! and the misbehaving-guest table): a bare-metal guest has no local APIC;
//! the nested tables do not map the page, so the first write (ICR high,
//! the destination) is a nested page fault and the VMM stops the guest
//! with `guest touched guest-physical 0xfee00310`. No IPI is sent: the
//! other CPU, waiting in the VMM, parks before the verdict, which names
//! the two vCPUs. `expect.txt` says `outcome: stopped`.
#![no_std]
#![no_main]

use guest_rt::arch::{self, PTE_ADDR, PTE_P, PTE_PS, PTE_RW};
use guest_rt::println;

guest_rt::entry!(main);

/// The local APIC page.
const APIC: u64 = 0xFEE0_0000;
/// ICR bits 63:32 (destination) and 31:0.
const ICR_HIGH: u64 = 0x310;
const ICR_LOW: u64 = 0x300;

/// A page directory for linear 3..4 GiB.
#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut PD_3G: Table = Table([0; 512]);

fn main() {
    let cr3 = arch::read_cr3();
    // SAFETY: the VMM's initial tables (PML4 -> PDPT -> PD) are
    // identity-mapped guest RAM; PDPT entry 3 (linear 3 GiB) is free, and
    // PD_3G is this image's (identity-mapped: its address is
    // guest-physical). PD entry 503 maps the 2 MiB at 0xFEE0_0000,
    // uncached (PCD | PWT).
    unsafe {
        let pd = core::ptr::addr_of_mut!(PD_3G);
        (*pd).0[503] = APIC | PTE_P | PTE_RW | PTE_PS | 0x18;
        let pml4 = (cr3 & PTE_ADDR) as *const u64;
        let pdpt = (*pml4 & PTE_ADDR) as *mut u64;
        pdpt.add(3).write_volatile(pd as u64 | PTE_P | PTE_RW);
        arch::write_cr3(cr3);
    }
    println!(
        "escape-apic: {} vCPUs; sending INIT, STARTUP and NMI to APIC ID 1 through the ICR",
        guest_rt::vcpu::count()
    );
    // SAFETY: the page is mapped (above); the VMM is expected to stop the
    // guest at the first write. If it did not, these would be the writes
    // of an IPI to another CPU.
    unsafe {
        for low in [0x0000_C500u32, 0x0000_0699, 0x0000_4400] {
            ((APIC + ICR_HIGH) as *mut u32).write_volatile(1 << 24);
            ((APIC + ICR_LOW) as *mut u32).write_volatile(low);
        }
    }
    println!("escape-apic: FAILED: wrote the local APIC's ICR and kept running");
    guest_rt::exit(1)
}
