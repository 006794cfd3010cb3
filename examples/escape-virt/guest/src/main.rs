//! Escape attempt: a guest executes every SVM and VMX instruction.
//!
//! Documented outcome (docs/ABI.md, vmm-core `exits.rs`): each one raises
//! `#UD` at the instruction, as on a CPU without SVM/VMX (CPUID hides
//! both), and the VMM keeps running. The two hypercall instructions,
//! `VMCALL` and `VMMCALL`, are the exception: both reach the VMM as
//! hypercalls on either vendor. The guest installs an IDT
//! (`guest_rt::arch`), runs each instruction at CPL 0 and checks that
//! `#UD` arrived with RIP on that instruction; after each one it calls
//! `alive` to show that the VMM still answers.
//!
//! Memory operands point at a scratch page and RAX/RCX hold its address,
//! so that nothing real would be touched even if an instruction executed.
#![no_std]
#![no_main]

use guest_rt::arch::{self, Fault};
use guest_rt::println;
use guest_sdk::{call, Error};

guest_rt::entry!(main);

#[repr(C, align(4096))]
struct Scratch([u8; 4096]);
static mut SCRATCH: Scratch = Scratch([0; 4096]);

fn report(name: &str, at: u64, fault: Option<Fault>) -> bool {
    let ok = matches!(fault, Some(Fault { vector: arch::UD, rip, .. }) if rip == at);
    match fault {
        Some(f) => println!(
            "escape-virt: {name}: exception {} at {:#x} (instruction at {at:#x}): {}",
            f.vector,
            f.rip,
            if ok { "#UD, ok" } else { "FAILED" }
        ),
        None => println!("escape-virt: {name}: no exception: FAILED"),
    }
    ok
}

fn main() -> Result<(), Error> {
    arch::install_idt();
    let page = core::ptr::addr_of!(SCRATCH) as u64;
    let mut ok = true;
    let mut attempts = 0;
    macro_rules! ud {
        ($name:literal, $len:expr, $($bytes:literal),+) => {{
            let (_, at, fault) = guest_rt::probe!($len, rax = page, rcx = page, $($bytes),+);
            ok &= report($name, at, fault);
            attempts += 1;
            ok &= call!("alive")? == 42;
        }};
    }
    // AMD SVM (APM Vol. 3): 0F 01 D8..DF, except D9 (VMMCALL).
    ud!("VMRUN", 3, "0x0f, 0x01, 0xd8");
    ud!("VMLOAD", 3, "0x0f, 0x01, 0xda");
    ud!("VMSAVE", 3, "0x0f, 0x01, 0xdb");
    ud!("STGI", 3, "0x0f, 0x01, 0xdc");
    ud!("CLGI", 3, "0x0f, 0x01, 0xdd");
    ud!("SKINIT", 3, "0x0f, 0x01, 0xde");
    ud!("INVLPGA", 3, "0x0f, 0x01, 0xdf");
    // Intel VMX (SDM Vol. 2), memory operands [rax]/[rcx].
    ud!("VMXON", 4, "0xf3, 0x0f, 0xc7, 0x30");
    ud!("VMPTRLD", 3, "0x0f, 0xc7, 0x30");
    ud!("VMCLEAR", 4, "0x66, 0x0f, 0xc7, 0x30");
    ud!("VMPTRST", 3, "0x0f, 0xc7, 0x38");
    ud!("VMREAD", 3, "0x0f, 0x78, 0xc8");
    ud!("VMWRITE", 3, "0x0f, 0x79, 0xc8");
    ud!("VMLAUNCH", 3, "0x0f, 0x01, 0xc2");
    ud!("VMRESUME", 3, "0x0f, 0x01, 0xc3");
    ud!("VMXOFF", 3, "0x0f, 0x01, 0xc4");
    ud!("INVEPT", 5, "0x66, 0x0f, 0x38, 0x80, 0x01");
    ud!("INVVPID", 5, "0x66, 0x0f, 0x38, 0x81, 0x01");
    ud!("VMFUNC", 3, "0x0f, 0x01, 0xd4");
    // Both hypercall instructions are hypercalls on either vendor: number
    // 0xdead_beef has no handler, so RAX comes back as -ENOSYS.
    for (name, amd) in [("VMCALL", false), ("VMMCALL", true)] {
        let (rax, _, fault) = if amd {
            guest_rt::probe!(3, rax = 0xdead_beef, rcx = 0xdead_beef, "0x0f, 0x01, 0xd9")
        } else {
            guest_rt::probe!(3, rax = 0xdead_beef, rcx = 0xdead_beef, "0x0f, 0x01, 0xc1")
        };
        let good = fault.is_none() && rax == (-38i64) as u64;
        println!(
            "escape-virt: {name}: hypercall, RAX {rax:#x}: {}",
            if good { "-ENOSYS, ok" } else { "FAILED" }
        );
        ok &= good;
    }
    println!(
        "escape-virt: {attempts} virtualization instructions, {}",
        if ok { "all #UD, VMM alive" } else { "FAILED" }
    );
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid)
    }
}
