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
//! (docs/VMM-CORE.md, "Guest profiles"), and a Linux guest on several
//! vCPUs also its CPU's own local APIC. While
//! the VMM handles an exit, the processor holds a pending interrupt
//! (SVM: GIF is clear after #VMEXIT, AMD APM Vol. 2 §15.17; VMX: the
//! VMM runs with RFLAGS.IF clear, Intel SDM Vol. 3C §28.5.3), and the
//! PIC keeps the request in its IRR until the CPU acknowledges it (8259A
//! data sheet, "Interrupt Sequence"), as the local APIC keeps an accepted
//! fixed interrupt in its IRR (Intel SDM Vol. 3A §12.8.4). So after each
//! step the VMM asks:
//!
//! 1. can the guest take an interrupt now: RFLAGS.IF set (a guest with
//!    interrupts masked gains nothing from a yield);
//! 2. does the master PIC request one: an IRR bit not masked in the IMR
//!    whose priority is above every ISR bit ([`pic_deliverable`]; the
//!    slave's requests reach the master's IR2);
//! 3. with a guest local APIC, does it hold one the CPU would take: the
//!    highest IRR vector's priority class above the PPR's
//!    ([`lapic_deliverable`], SDM Vol. 3A §12.8.3.1). The PPR already
//!    accounts for the TPR and the interrupts in service. The APIC is the
//!    CPU's own (passed through, crate::lapic), so the VMM reads the
//!    registers the guest programmed: its timer, its IPIs. Of the eight
//!    IRR words it reads only those a vector the guest wrote into an LVT
//!    entry or sent in a fixed IPI lies in
//!    ([`crate::smp::Machine::note_vector`]; there is no other source of
//!    fixed interrupts): for Linux, whose vectors are all at 0xE0 and
//!    above, the PPR and one IRR word per step instead of nine registers.
//!
//! Reading the IRR and ISR takes an OCW3 (`0x0A`, `0x0B`) written to port
//! `0x20`; the VMM leaves OCW3 selecting the IRR, the PIC's state after
//! initialization (docs/ABI.md, "Long calls": a guest that selects the ISR
//! reads it before its next long call). Only the boot CPU looks at the PIC
//! (its LINT0 alone takes the PIC's interrupts), so another CPU never
//! writes to the PIC under the boot CPU's guest; every CPU whose guest has
//! a local APIC looks at that APIC. A CPU with neither (an AP of a
//! bare-metal guest) has no interrupt source its guest could program: a
//! long call there yields at the step budget.

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

use crate::backend::{Backend, Host};
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

/// Local APIC register offsets the check reads (Intel SDM Vol. 3A,
/// Table 12-1): the processor priority and the first of the eight
/// 32-bit interrupt request registers, 16 bytes apart.
const APIC_PPR: u32 = 0xA0;
const APIC_IRR: u32 = 0x200;

/// Whether a local APIC would interrupt the CPU now: the highest vector
/// requested in its IRR (`irr(i)` is IRR word `i`, vectors `32 * i ..`)
/// has a priority class (vector bits 7:4) above the processor priority
/// class, PPR bits 7:4 (Intel SDM Vol. 3A §12.8.3.1: the APIC delivers
/// only such interrupts; the PPR holds the larger of the TPR and the
/// highest interrupt in service). Only the words set in `words` are read
/// (the others hold nothing: [`crate::smp::Machine::vector_words`]), from
/// the highest down, stopping at the first that requests anything.
pub fn lapic_deliverable(ppr: u32, words: u8, mut irr: impl FnMut(u32) -> u32) -> bool {
    for i in (0..8u32).rev() {
        if words & (1 << i) == 0 {
            continue;
        }
        let word = irr(i);
        if word != 0 {
            // `31 - leading_zeros` is the highest set bit, below 32, and
            // `i * 32` is at most 224: no overflow.
            let vector = i.wrapping_mul(32) | 31u32.wrapping_sub(word.leading_zeros());
            return vector >> 4 > (ppr >> 4) & 0xF;
        }
    }
    false
}

/// Whether the local APIC behind `host` would interrupt the guest now
/// ([`lapic_deliverable`] on its PPR and the IRR words in `words`, those a
/// guest vector can be in: [`crate::smp::Machine::vector_words`]). With
/// none, nothing is read: a guest that programmed no vector yet. What a
/// backend's [`Backend::lapic_requests`] answers, on its CPU's APIC.
pub fn lapic_requests(host: &dyn Host, words: u8) -> bool {
    if words == 0 {
        return false;
    }
    let ppr = host.apic_read(APIC_PPR);
    lapic_deliverable(ppr, words, |i| {
        host.apic_read(APIC_IRR.wrapping_add(i.wrapping_mul(0x10)))
    })
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

/// What an exit learned of where its guest's interrupts could come from
/// ([`Stepping`]'s `interrupt_pending`): asked after every step of a long
/// call, so the parts that cannot change while the VMM runs are read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Irq {
    /// Nothing read yet.
    Unread,
    /// It cannot take one: RFLAGS.IF is clear, or no source is this CPU's
    /// to look at (not the boot CPU, no guest local APIC).
    Never,
    /// It can when the PIC requests one; OCW3 now selects the IRR.
    Pic,
    /// It has a local APIC (not on the boot CPU): when that requests one.
    Lapic,
    /// The boot CPU with a guest local APIC: when the PIC (OCW3 now
    /// selects the IRR) or the local APIC requests one.
    PicAndLapic,
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

    /// RFLAGS.IF, then the PIC's request and the guest's local APIC's.
    /// The PIC only on the boot CPU, where vCPU 0 runs (`rt::start`): its
    /// output reaches that CPU's LINT0 alone, so a guest on another CPU
    /// has no PIC interrupt to take, and the VMM there must not write
    /// OCW3 under the boot CPU's guest. The local APIC on every CPU whose
    /// guest has one ([`Backend::lapic`]). RFLAGS, the CPU and the profile
    /// are read at the first check of an exit only: the guest does not
    /// run between two checks.
    fn interrupt_pending(&mut self) -> bool {
        // The bare-metal cases, which a long call asks after every 4 KiB
        // step, stay free of calls (and so of saved registers): the rest
        // is out of line. Measured: 24 ticks a step on bochs-svm when it
        // was all one function (stepped/unstepped 1.014 -> 1.033).
        match self.irq {
            Irq::Never => false,
            Irq::Pic => pic_requests(false),
            Irq::Unread | Irq::Lapic | Irq::PicAndLapic => self.interrupt_pending_slow(),
        }
    }
}

impl Stepping<'_> {
    /// [`Stepper::interrupt_pending`] at the first check of an exit, and
    /// with a guest local APIC.
    #[inline(never)]
    fn interrupt_pending_slow(&mut self) -> bool {
        match self.irq {
            Irq::Never => false,
            Irq::Pic => pic_requests(false),
            Irq::Lapic => self.backend.lapic_requests(),
            Irq::PicAndLapic => pic_requests(false) || self.backend.lapic_requests(),
            Irq::Unread => {
                let boot = self.id == 0;
                let lapic = self.backend.lapic();
                if self.backend.rflags() & RFLAGS_IF == 0 || !(boot || lapic) {
                    self.irq = Irq::Never;
                    return false;
                }
                if !lapic {
                    self.irq = Irq::Pic;
                    return pic_requests(true);
                }
                self.irq = if boot { Irq::PicAndLapic } else { Irq::Lapic };
                // The PIC first: its first read selects the IRR for the
                // checks after this one.
                (boot && pic_requests(true)) || self.backend.lapic_requests()
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

    /// IRR words with `vectors` set.
    fn irr(vectors: &[u32]) -> [u32; 8] {
        let mut w = [0u32; 8];
        for &v in vectors {
            w[(v / 32) as usize] |= 1 << (v % 32);
        }
        w
    }

    #[test]
    fn a_local_apic_request_is_deliverable_above_the_processor_priority() {
        let ask = |ppr: u32, vectors: &[u32]| {
            let w = irr(vectors);
            lapic_deliverable(ppr, 0xFF, |i| w[i as usize])
        };
        assert!(!ask(0, &[]), "nothing requested");
        // Linux's local timer vector 0xEC, class 14.
        assert!(ask(0, &[0xEC]));
        assert!(ask(0xDF, &[0xEC]), "PPR class 13 < 14");
        assert!(!ask(0xE0, &[0xEC]), "the same class waits (SDM 12.8.3.1)");
        assert!(!ask(0xF0, &[0xEC]));
        // Only the highest request counts: 0x31 (class 3) behind 0xEC.
        assert!(!ask(0xE5, &[0x31, 0xEC]));
        assert!(ask(0x20, &[0x31]), "class 3 over class 2");
        assert!(ask(0x00, &[0x20]), "the lowest valid vector, in word 1");
        assert!(!ask(0x00, &[0x05]), "vectors 0-15 are class 0: never above");
        assert!(ask(0xE0, &[0xFF]), "the highest vector, bit 31 of word 7");
        // PPR bits above 7:4 are reserved and ignored.
        assert!(ask(0xFFFF_FF00, &[0xEC]));
        // Reads stop at the first word that requests anything.
        let w = irr(&[0xEC, 0x40]);
        let mut read = std::vec::Vec::new();
        lapic_deliverable(0, 0xFF, |i| {
            read.push(i);
            w[i as usize]
        });
        assert_eq!(read, [7]);
        let mut read = std::vec::Vec::new();
        lapic_deliverable(0, 0xFF, |i| {
            read.push(i);
            0
        });
        assert_eq!(read, [7, 6, 5, 4, 3, 2, 1, 0], "nothing: all eight");
        // Only the words a guest vector can be in are read: 0x40 (word 2)
        // is found without reading word 7.
        let mut read = std::vec::Vec::new();
        let found = lapic_deliverable(0, 1 << 2 | 1 << 1, |i| {
            read.push(i);
            w[i as usize]
        });
        assert!(found);
        assert_eq!(read, [2]);
        assert!(!lapic_deliverable(0, 0, |_| u32::MAX), "no word: nothing");
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
