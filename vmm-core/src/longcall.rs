//! Long calls in steps (docs/ABI.md, "Long calls"): what the run loop
//! gives `vmmcall` so that a long call returns to the guest between steps
//! when the guest has an interrupt to take.
//!
//! The run loop owns one [`Continuations`] per vCPU (the progress of the
//! calls that yielded, kept in the VMM, never in guest memory) and, at a
//! hypercall exit, hands `vmmcall` a [`Stepping`]: the backend (the lazy
//! CPL and paging mode handlers read anyway) plus a pointer to those
//! continuations, held by value as the [`VcpuState`] of the
//! `vmmcall::GuestVcpu`. So a plain call stores one word more than before
//! and nothing escapes as a second `dyn Vcpu`: `vmmcall` asks for the
//! [`Stepper`] only when a long handler (or `vmmcall_batch`) runs.
//!
//! **When the guest has an interrupt pending.** vmm-core delivers no
//! interrupts of its own: external interrupts go straight to the guest
//! (no SVM INTR intercept, no VMX external-interrupt exiting), and the
//! only interrupt controller a guest may program is the 8259 PIC pair
//! (docs/VMM-CORE.md, "Guest profiles"; a Linux guest on several vCPUs
//! also has its CPU's local APIC, whose timer this check does not see:
//! there a long call yields at the step budget). While
//! the VMM handles an exit, the processor holds a pending interrupt
//! (SVM: GIF is clear after #VMEXIT, AMD APM Vol. 2 §15.17; VMX: the
//! VMM runs with RFLAGS.IF clear, Intel SDM Vol. 3C §28.5.3), and the
//! PIC keeps the request in its IRR until the CPU acknowledges it (8259A
//! data sheet, "Interrupt Sequence"). So after each step the VMM asks:
//!
//! 1. can the guest take an interrupt now: RFLAGS.IF set (a guest with
//!    interrupts masked gains nothing from a yield);
//! 2. does the master PIC request one: an IRR bit not masked in the IMR
//!    whose priority is above every ISR bit ([`pic_deliverable`]; the
//!    slave's requests reach the master's IR2).
//!
//! Reading the IRR and ISR takes an OCW3 (`0x0A`, `0x0B`) written to port
//! `0x20`; the VMM leaves OCW3 selecting the IRR, the PIC's state after
//! initialization (docs/ABI.md, "Long calls": a guest that selects the ISR
//! reads it before its next long call). Only the boot CPU looks (its LINT0
//! alone takes the PIC's interrupts): on another CPU a long call yields
//! only at the step budget, and never writes to the PIC under the boot
//! CPU's guest.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use crate::backend::Backend;
use core::sync::atomic::{AtomicU32, Ordering};
use vmmcall::paging::PagingMode;
use vmmcall::step::{Continuations, Site, Stepper, DEFAULT_STEP_BUDGET};
use vmmcall::VcpuState;

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// Steps per exit of every vCPU started after [`set_step_budget`].
static STEP_BUDGET: AtomicU32 = AtomicU32::new(DEFAULT_STEP_BUDGET);

/// Set the step budget per exit (docs/ABI.md, "Long calls"), at least
/// one step, of the vCPUs whose run loop starts afterwards: call it
/// before the guest starts, e.g. from a VMM's own initialization. The run
/// loop reads it once, so no call touches a line other CPUs share.
pub fn set_step_budget(steps: u32) {
    STEP_BUDGET.store(steps.max(1), Ordering::Relaxed);
}

/// The step budget a new run loop uses ([`DEFAULT_STEP_BUDGET`] unless
/// [`set_step_budget`] changed it).
pub fn step_budget() -> u32 {
    STEP_BUDGET.load(Ordering::Relaxed)
}

/// The master 8259's registers a pending-interrupt check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pic {
    /// Interrupt request register: lines requesting service.
    pub irr: u8,
    /// Interrupt mask register: lines the guest masked.
    pub imr: u8,
    /// In-service register: interrupts delivered and not yet ended (EOI).
    pub isr: u8,
}

/// Whether the PIC would interrupt the CPU now: a request in `irr` not
/// masked by `imr`, of higher priority than every interrupt in service
/// (fully nested mode with the default priorities, IR0 highest; 8259A
/// data sheet, "Fully Nested Mode"). A guest that rotates priorities or
/// uses special mask mode may see a yield that was not needed, or none
/// until the budget is spent: either way the call's result is the same.
pub const fn pic_deliverable(pic: Pic) -> bool {
    let wanted = pic.irr & !pic.imr;
    if wanted == 0 {
        return false;
    }
    // The highest-priority request and service are the lowest set bits.
    pic.isr == 0 || wanted.trailing_zeros() < pic.isr.trailing_zeros()
}

/// What the paging mode of `p` is made of, as one value that changes when
/// the mode does (CR0.PG, CR4.PAE, CR4.LA57, EFER.LMA): a [`Site`] field.
pub const fn paging_mode_bits(p: &PagingMode) -> u64 {
    const CR0_PG: u64 = 1 << 31;
    const CR4_PAE: u64 = 1 << 5;
    const CR4_LA57: u64 = 1 << 12;
    const EFER_LMA: u64 = 1 << 10;
    (p.cr0 & CR0_PG) | (p.cr4 & (CR4_PAE | CR4_LA57)) | (p.efer & EFER_LMA)
}

/// Whether the master PIC requests an interrupt now ([`pic_deliverable`]):
/// the IRR and IMR, and the ISR only when a request is unmasked. OCW3 is
/// left selecting the IRR; `select` writes it first (the guest may have
/// selected the ISR since the last exit; within one exit nothing else
/// writes the PIC, so the first check of an exit selects for the rest).
#[cfg(not(test))]
fn pic_requests(select: bool) -> bool {
    let (irr, imr) = crate::cpu::read_pic_irr_imr(select);
    irr & !imr != 0
        && pic_deliverable(Pic {
            irr,
            imr,
            isr: crate::cpu::read_pic_isr(),
        })
}

#[cfg(test)]
fn pic_requests(_select: bool) -> bool {
    pic_deliverable(tests::PIC.with(|p| p.get()))
}

/// What an exit learned of whether its guest can take a PIC interrupt
/// ([`Stepping`]'s `interrupt_pending`): asked after every step of a long
/// call, so the parts that cannot change while the VMM runs are read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Irq {
    /// Nothing read yet.
    Unread,
    /// It cannot: RFLAGS.IF is clear, or this is not the boot CPU.
    Never,
    /// It can when the PIC requests one; OCW3 now selects the IRR.
    Pic,
}

/// The state `vmmcall` sees at a hypercall exit on a VMM with steps: the
/// backend (CPL and paging mode, read lazily) and this vCPU's
/// continuations. See the [module docs](self).
pub struct Stepping<'b> {
    backend: &'b mut dyn Backend,
    conts: &'b mut Continuations,
    /// The vCPU's id (what `Caller::vcpu_id` answers, and the shard of
    /// the registry's call counters this vCPU writes).
    id: u32,
    irq: Irq,
}

impl<'b> Stepping<'b> {
    /// The backend at this exit of vCPU `id`, with the run loop's
    /// continuations.
    #[inline(always)]
    pub fn new(backend: &'b mut dyn Backend, conts: &'b mut Continuations, id: u32) -> Self {
        Stepping {
            backend,
            conts,
            id,
            irq: Irq::Unread,
        }
    }

    /// The backend again (the exit is handled).
    #[inline(always)]
    pub fn backend(&mut self) -> &mut dyn Backend {
        self.backend
    }
}

impl VcpuState for Stepping<'_> {
    #[inline(always)]
    fn cpl(&self) -> u8 {
        self.backend.cpl()
    }
    #[inline(always)]
    fn paging(&self) -> PagingMode {
        self.backend.paging()
    }
    #[inline]
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        Some(self)
    }
    #[inline(always)]
    fn vcpu_id(&self) -> u32 {
        self.id
    }
}

impl Stepper for Stepping<'_> {
    fn continuations(&mut self) -> &mut Continuations {
        self.conts
    }

    fn site(&mut self) -> Site {
        let p = self.backend.paging();
        Site {
            rip: self.backend.rip(),
            paging_root: p.cr3,
            paging_mode: paging_mode_bits(&p),
        }
    }

    /// RFLAGS.IF and the PIC's request. Only on the boot CPU, where
    /// vCPU 0 runs (`rt::start`): the PIC's output reaches its LINT0
    /// alone, so a guest on another CPU has no PIC interrupt to take, and
    /// the VMM there must not write OCW3 under the boot CPU's guest.
    /// RFLAGS and the CPU are read at the first check of an exit only:
    /// the guest does not run between two checks.
    fn interrupt_pending(&mut self) -> bool {
        match self.irq {
            Irq::Never => false,
            Irq::Pic => pic_requests(false),
            Irq::Unread => {
                if self.id != 0 || self.backend.rflags() & RFLAGS_IF == 0 {
                    self.irq = Irq::Never;
                    return false;
                }
                self.irq = Irq::Pic;
                pic_requests(true)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    extern crate std;
    use std::cell::Cell;

    std::thread_local! {
        /// The PIC the run loop's tests see.
        pub(crate) static PIC: Cell<Pic> = const { Cell::new(Pic { irr: 0, imr: 0, isr: 0 }) };
    }

    fn pic(irr: u8, imr: u8, isr: u8) -> Pic {
        Pic { irr, imr, isr }
    }

    #[test]
    fn a_request_is_deliverable_unless_masked_or_outranked() {
        assert!(!pic_deliverable(pic(0, 0, 0)), "nothing requested");
        assert!(pic_deliverable(pic(1, 0, 0)), "IR0, nothing in service");
        assert!(!pic_deliverable(pic(1, 1, 0)), "IR0 masked");
        assert!(pic_deliverable(pic(0b11, 1, 0)), "IR1 while IR0 is masked");
        // IR0 in service (its handler runs): IR0 again and IR3 wait for
        // the EOI, IR0 outranks everything.
        assert!(!pic_deliverable(pic(1, 0, 1)));
        assert!(!pic_deliverable(pic(1 << 3, 0, 1)));
        assert!(pic_deliverable(pic(1, 0, 1 << 3)));
        // The slave's request arrives as IR2.
        assert!(pic_deliverable(pic(1 << 2, 0xFB, 0)));
        assert!(!pic_deliverable(pic(0xFF, 0xFF, 0)));
    }

    #[test]
    fn paging_mode_bits_change_with_the_mode_only() {
        let long = PagingMode::new(1 << 31 | 1, 0x1000, 1 << 5, 1 << 10 | 1 << 8);
        let other_root = PagingMode::new(1 << 31 | 1, 0x5000, 1 << 5, 1 << 10 | 1 << 8);
        assert_eq!(paging_mode_bits(&long), paging_mode_bits(&other_root));
        assert_eq!(paging_mode_bits(&long), 1 << 31 | 1 << 5 | 1 << 10);
        let off = PagingMode::new(1, 0x1000, 1 << 5, 1 << 8);
        assert_ne!(paging_mode_bits(&long), paging_mode_bits(&off));
        let la57 = PagingMode::new(1 << 31 | 1, 0x1000, 1 << 5 | 1 << 12, 1 << 10);
        assert_ne!(paging_mode_bits(&long), paging_mode_bits(&la57));
    }
}
