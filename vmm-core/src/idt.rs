//! The VMM's own interrupt descriptor table: what happens when the CPU
//! delivers an event to the VMM instead of the guest.
//!
//! The VMM runs with interrupts off (RFLAGS.IF = 0 after every VM exit;
//! on SVM also GIF = 0), so only two kinds of event can reach it:
//! - **NMI** (vector 2), on a stack of its own ([`NMI_IST`]). NMIs are how
//!   the VMM signals another CPU (`crate::smp`), and both vendors make an
//!   NMI that arrives in the guest exit (VMX "NMI exiting", SVM's NMI
//!   intercept). On VMX an NMI that arrives while the VMM runs is
//!   delivered through the host IDT (Intel SDM Vol. 3C §28.5: the VM exit
//!   does not block it). On SVM the host runs with GIF clear, which holds
//!   NMIs pending until VMRUN sets GIF again (AMD APM Vol. 2 §15.17), when
//!   the intercept makes it exit at once; the VMM then takes it with
//!   STGI/CLGI. Either way the CPU's slot decides
//!   ([`crate::smp::Slot::nmi_arrived`]): the VMM's own signal, or an NMI
//!   for the guest, latched ([`NmiLatch`]) and injected at the next entry
//!   where the guest does not block NMIs, so it is neither lost nor a
//!   reset.
//! - **A debug exception** (vector 1): the VMM sets no breakpoints and
//!   never single-steps, so it can only be a guest's trap leaking into the
//!   host (Bochs 2.7 under SVM delivers the single-step trap of an
//!   intercepted guest instruction after the #VMEXIT). It is dropped, DR6
//!   cleared; the run loop injects the guest's own single-step `#DB`.
//! - **An exception in the VMM itself** (a bug): the handler prints the
//!   vector, error code, RIP and CR2 and stops the machine with a failure
//!   status, instead of the triple fault (a silent reset) that an absent
//!   IDT would give.
//!
//! The gate and TSS formats are `vmm_shared::desc` (shared with the guest
//! runtime) and unit-tested there; the table and the handlers live in the
//! runtime (feature `rt`).

use core::sync::atomic::{AtomicBool, Ordering};

pub use vmm_shared::desc::interrupt_gate;

/// The IST slot the VMM's `#DF` gate uses: a double fault (e.g. a stack
/// overflow into the guard page, whose `#PF` cannot be delivered on the
/// same stack) runs on a stack of its own.
pub const DF_IST: u8 = 1;

/// The IST slot of the NMI gate: an NMI never runs on the stack it
/// interrupted. The VMM is built for the x86-64 SysV target, whose leaf
/// functions keep locals in the 128-byte red zone below RSP; an interrupt
/// pushed on that stack would overwrite them. The VMM runs with RFLAGS.IF
/// clear, so NMI and `#MC` are the only asynchronous events that can
/// reach it, and both switch stacks (SDM Vol. 3A §7.14.5): the red zone is
/// then safe. Each CPU has its own NMI stack (`crate::smp::layout`).
pub const NMI_IST: u8 = 2;

/// The IST slot of the machine-check gate (see [`NMI_IST`]).
pub const MC_IST: u8 = 3;

/// The 4 KiB page-table entries that map the 2 MiB page at `base` with
/// `flags`, except the page at `hole`, left not present: how the VMM
/// unmaps its stack's guard page inside the boot stub's 2 MiB identity
/// map (SDM Vol. 3A §5.5, 4-KByte pages).
pub fn split_2m(base: u64, flags: u64, hole: u64) -> [u64; 512] {
    let mut pt = [0u64; 512];
    for (i, e) in pt.iter_mut().enumerate() {
        let pa = base.wrapping_add((i as u64) << 12);
        if pa != hole & !0xFFF {
            *e = pa | flags;
        }
    }
    pt
}

/// Whether `vector` pushes an error code (SDM Vol. 3A §7.3, Table 7-1):
/// #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP.
pub const fn pushes_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21)
}

/// The name of an exception vector, for the VMM's fatal-fault report.
pub const fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD exception",
        20 => "#VE virtualization exception",
        21 => "#CP control protection",
        _ => "reserved or external vector",
    }
}

/// An NMI that reached the VMM and waits for the guest.
pub struct NmiLatch(AtomicBool);

impl NmiLatch {
    /// Nothing pending.
    pub const fn new() -> Self {
        NmiLatch(AtomicBool::new(false))
    }

    /// Record an NMI (from the host NMI handler).
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Take the pending NMI if the guest can receive it now: no event is
    /// being re-injected and the guest blocks neither NMIs nor (MOV SS /
    /// STI shadow) events. Otherwise it stays pending for a later entry.
    pub fn take_if(&self, guest_can_take: bool) -> bool {
        guest_can_take && self.0.swap(false, Ordering::SeqCst)
    }

    /// Whether an NMI is pending.
    pub fn pending(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Default for NmiLatch {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn the_guard_page_is_the_only_hole() {
        let pt = split_2m(0x20_0000, 3, 0x23_4567);
        for (i, e) in pt.iter().enumerate() {
            let pa = 0x20_0000 + (i as u64) * 4096;
            if pa == 0x23_4000 {
                assert_eq!(*e, 0, "the guard page is not present");
            } else {
                assert_eq!(*e, pa | 3);
            }
        }
    }

    #[test]
    fn error_codes_and_names() {
        let with: std::vec::Vec<u8> = (0..32).filter(|&v| pushes_error_code(v)).collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21]);
        assert_eq!(exception_name(14), "#PF page fault");
        assert_eq!(exception_name(200), "reserved or external vector");
    }

    #[test]
    fn nmis_wait_until_the_guest_can_take_them() {
        let l = NmiLatch::new();
        assert!(!l.take_if(true), "nothing pending");
        l.raise();
        assert!(!l.take_if(false), "blocked: stays pending");
        assert!(l.pending());
        assert!(l.take_if(true));
        assert!(!l.pending() && !l.take_if(true), "delivered once");
    }
}
