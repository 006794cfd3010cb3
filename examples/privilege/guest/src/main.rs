//! A guest that drops to ring 3 and shows the privilege rules:
//! - a `user` handler works from ring 3 (and sees CPL 3);
//! - a CPL0-only handler returns -EPERM to ring 3;
//! - a pointer to a supervisor page returns -EFAULT from ring 3 (and works
//!   from ring 0), and a name there is not found;
//! - the other vendor's hypercall instruction reaches the handler too.
//!
//! Ring 3 set-up: every 2 MiB page of guest RAM becomes user-accessible
//! except the one at 16 MiB (the "kernel" page, holding a secret); IOPL 3
//! lets ring 3 print to COM1; IRETQ to the user selectors of the VMM's
//! initial GDT (0x1b data, 0x23 code). The `exit` hypercall is CPL 0
//! only: ring 3 gets EPERM from it and runs on (a user program cannot end
//! the run with a status of its choosing), then finishes through its
//! kernel, `guest_rt::exit`, which SYSCALLs back to ring 0 first.
#![no_std]
#![no_main]

use guest_rt::{arch, println};
use guest_sdk::{call, call_unchecked, Error, Instruction};

guest_rt::entry!(main);

/// Guest-physical (= linear) address of the supervisor-only page.
const KERNEL_PAGE: u64 = 16 << 20;
const SECRET: &[u8] = b"whoami\0 secret!!";

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut USER_STACK: Stack = Stack([0; 16384]);

fn check(what: &str, ok: bool) -> bool {
    println!("privilege: {what}: {}", if ok { "ok" } else { "FAILED" });
    ok
}

fn main() -> Result<(), Error> {
    // SAFETY: KERNEL_PAGE is guest RAM (32 MiB), identity-mapped and unused
    // by the image (which lives at 2 MiB).
    unsafe {
        core::ptr::copy_nonoverlapping(SECRET.as_ptr(), KERNEL_PAGE as *mut u8, SECRET.len())
    };
    let mut ok = check("ring 0 sees CPL 0", call!("whoami")? == 0);
    ok &= check("ring 0 may call kernel_only", call!("kernel_only")? == 42);
    let expected: u64 = SECRET.iter().map(|&b| u64::from(b)).sum();
    ok &= check(
        "ring 0 reads the kernel page",
        call!("sum", rbx = KERNEL_PAGE, rcx = SECRET.len())? == expected,
    );
    if !ok {
        return Err(Error::Invalid);
    }
    // SAFETY: we are at CPL 0 in 64-bit mode with the VMM's tables.
    unsafe { make_user_mappings() };
    println!("privilege: dropping to ring 3");
    // SAFETY: the stack is ours and now user-accessible; ring3_main never
    // returns.
    unsafe { enter_ring3(ring3_main) }
}

/// Mark every 2 MiB page user-accessible except KERNEL_PAGE's.
///
/// # Safety
/// CR3 must point at the VMM's initial tables (PML4 -> PDPT -> PD of
/// 2 MiB pages), identity-mapped.
unsafe fn make_user_mappings() {
    use guest_rt::arch::{PTE_ADDR, PTE_P, PTE_US};
    let cr3 = arch::read_cr3();
    // SAFETY: the tables are identity-mapped guest RAM (see docs/ABI.md);
    // only the U/S bits of present PD entries change, so the same memory
    // stays mapped when CR3 is reloaded.
    unsafe {
        let pml4 = (cr3 & PTE_ADDR) as *mut u64;
        let pdpt = (*pml4 & PTE_ADDR) as *mut u64;
        let pd = (*pdpt & PTE_ADDR) as *mut u64;
        for i in 0..512 {
            let e = pd.add(i);
            if *e & PTE_P != 0 && (i as u64) << 21 != KERNEL_PAGE {
                *e |= PTE_US;
            }
        }
        arch::write_cr3(cr3);
    }
}

/// IRETQ to `entry` at CPL 3 with IOPL 3 on the user stack.
///
/// # Safety
/// The code and stack must be user-accessible.
unsafe fn enter_ring3(entry: extern "C" fn() -> !) -> ! {
    let top = core::ptr::addr_of_mut!(USER_STACK) as u64 + 16384;
    // SAFETY: the caller guarantees the mappings (guest_rt::arch's
    // requirements: code and stack user-accessible, CPL 0, the VMM's GDT).
    unsafe { arch::enter_ring3(entry, top) }
}

extern "C" fn ring3_main() -> ! {
    let status = match ring3_checks() {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            println!("privilege: unexpected error {e:?}");
            2
        }
    };
    guest_rt::exit(status)
}

fn ring3_checks() -> Result<bool, Error> {
    let mut ok = check("ring 3 sees CPL 3", call!("whoami")? == 3);
    ok &= check(
        "ring 3 gets EPERM from kernel_only",
        call!("kernel_only") == Err(Error::Permission),
    );
    let user_buf = [1u8, 2, 3, 4];
    // SAFETY: `sum` only reads `len` bytes at RBX (a shared reference is
    // enough), and `len` is the buffer's.
    let total = unsafe { call_unchecked!("sum", rbx = &user_buf, rcx = user_buf.len()) }?;
    ok &= check("ring 3 reads its own buffer", total == 10);
    ok &= check(
        "ring 3 gets EFAULT for the kernel page",
        call!("sum", rbx = KERNEL_PAGE, rcx = SECRET.len()) == Err(Error::Fault),
    );
    let vmm = guest_sdk::detect().ok_or(Error::NotPresent)?;
    // get_vmmcall_number with RBX on the kernel page ("whoami\0" is there):
    // ring 3 cannot touch the page itself, so the raw call is used.
    // SAFETY: the VMM is present; function 0 only reads at RBX.
    let n = unsafe { guest_sdk::raw_hypercall(vmm.instruction, 0, [KERNEL_PAGE, 0, 0, 0, 0]) };
    ok &= check("ring 3 cannot look up a name on the kernel page", n == 0);
    let other = match vmm.instruction {
        Instruction::Vmcall => Instruction::Vmmcall,
        Instruction::Vmmcall => Instruction::Vmcall,
    };
    let number = guest_sdk::lookup(b"whoami\0")?;
    // SAFETY: the VMM is present; whoami takes no memory arguments.
    let r = unsafe { guest_sdk::raw_hypercall(other, number, [0; 5]) };
    ok &= check("the other vendor's instruction reaches the handler", r == 3);
    ok &= check(
        "ring 3 gets EPERM from exit and runs on",
        call!("exit", rbx = 0u32) == Err(Error::Permission),
    );
    Ok(ok)
}
