//! The local APIC of a Linux guest on several vCPUs: what a guest write
//! to its xAPIC page does.
//!
//! Each vCPU runs on a CPU of its own, so the VMM maps that CPU's own
//! local APIC page (guest-physical = host-physical `0xFEE0_0000`, the same
//! address on every CPU) into the guest **read-only** and uncached: reads
//! (ISR, IRR, the timer's count, the ID) go straight to the hardware, and
//! every write faults (nested page fault / EPT violation) and comes here.
//! QEMU's TCG has no x2APIC, so this is the xAPIC MMIO interface on every
//! platform (Intel SDM Vol. 3A §12.4.1, Table 12-1; AMD APM Vol. 2 §16.3).
//!
//! [`classify`] decides, for one 32-bit write:
//! - **passed to the hardware:** EOI, TPR, LDR, DFR, the spurious vector
//!   register (software enable), ESR, the timer's initial count and divide
//!   configuration, and the LVT entries whose delivery mode is fixed or NMI
//!   (an NMI there reaches this CPU's VMM, which forwards it to this vCPU,
//!   crate::idt) — and ExtINT on LINT0, the PIC's path to the CPU in
//!   virtual-wire mode;
//! - **masked:** an LVT entry asking for SMI, INIT or ExtINT elsewhere is
//!   written with its mask bit set: those would reach the VMM's CPU as an
//!   SMI or INIT (a reset) or take the PIC's interrupts away from the boot
//!   CPU;
//! - **dropped:** the APIC ID and read-only registers, and offsets that
//!   are not registers;
//! - **ICR high:** kept per vCPU, never written to the hardware (the VMM
//!   sends its own IPIs through the same register);
//! - **ICR low, an IPI:** fixed and NMI IPIs go to the hardware with the
//!   kept destination (every CPU of the machine runs a vCPU of this guest;
//!   an NMI reaching another CPU's VMM is forwarded to its vCPU); INIT and
//!   STARTUP in physical destination mode are emulated ([`Ipi::Init`],
//!   [`Ipi::Startup`]): they never reach a CPU, whose INIT would reset the
//!   VMM (SVM) or whose wait-for-SIPI state the VMM does not use (VMX).
//!   SMI, lowest priority with anything but fixed semantics, ExtINT,
//!   remote read, and INIT or STARTUP in logical mode or with a shorthand
//!   are dropped.
//!
//! Portable: the run loop performs what this module decides.

/// The xAPIC registers this module knows (offsets in the page).
pub mod reg {
    /// Local APIC ID.
    pub const ID: u32 = 0x20;
    /// Task priority.
    pub const TPR: u32 = 0x80;
    /// End of interrupt.
    pub const EOI: u32 = 0xB0;
    /// Logical destination.
    pub const LDR: u32 = 0xD0;
    /// Destination format.
    pub const DFR: u32 = 0xE0;
    /// Spurious interrupt vector.
    pub const SVR: u32 = 0xF0;
    /// Error status.
    pub const ESR: u32 = 0x280;
    /// LVT CMCI.
    pub const LVT_CMCI: u32 = 0x2F0;
    /// Interrupt command, bits 31:0.
    pub const ICR_LOW: u32 = 0x300;
    /// Interrupt command, bits 63:32.
    pub const ICR_HIGH: u32 = 0x310;
    /// LVT timer.
    pub const LVT_TIMER: u32 = 0x320;
    /// LVT thermal sensor.
    pub const LVT_THERMAL: u32 = 0x330;
    /// LVT performance counter.
    pub const LVT_PERF: u32 = 0x340;
    /// LVT LINT0.
    pub const LVT_LINT0: u32 = 0x350;
    /// LVT LINT1.
    pub const LVT_LINT1: u32 = 0x360;
    /// LVT error.
    pub const LVT_ERROR: u32 = 0x370;
    /// Timer initial count.
    pub const TIMER_INIT: u32 = 0x380;
    /// Timer divide configuration.
    pub const TIMER_DIV: u32 = 0x3E0;
}

/// Delivery modes (ICR and LVT bits 10:8).
const FIXED: u32 = 0b000;
const LOWEST: u32 = 0b001;
const NMI: u32 = 0b100;
const INIT: u32 = 0b101;
const STARTUP: u32 = 0b110;
const EXTINT: u32 = 0b111;
/// LVT mask bit.
const MASKED: u32 = 1 << 16;

/// An IPI the guest asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipi {
    /// Send `icr_low` to the hardware, destination `icr_high` (the kept
    /// ICR high word): a fixed or NMI IPI.
    Send {
        /// ICR bits 31:0 as the guest wrote them.
        icr_low: u32,
        /// ICR bits 63:32 (destination in 31:24).
        icr_high: u32,
    },
    /// INIT to the CPU with this APIC ID: the vCPU there waits for its
    /// STARTUP.
    Init(u32),
    /// STARTUP with this vector to the CPU with this APIC ID: the vCPU
    /// starts in real mode at `vector << 12`.
    Startup {
        /// The target's APIC ID.
        apic_id: u32,
        /// The start page (`vector << 12` is the physical start address).
        vector: u8,
    },
    /// Not sent (see the module docs).
    Dropped,
}

/// What one guest write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Write this value to the register on the hardware.
    Pass(u32),
    /// Keep as this vCPU's ICR high word.
    IcrHigh(u32),
    /// An IPI (ICR low).
    Ipi(Ipi),
    /// Nothing happens.
    Drop,
}

/// Classify a 32-bit write of `value` at `offset` of the APIC page by the
/// vCPU whose kept ICR high word is `icr_high`.
pub fn classify(offset: u32, value: u32, icr_high: u32) -> Write {
    let mode = (value >> 8) & 0b111;
    match offset {
        reg::TPR | reg::EOI | reg::LDR | reg::DFR | reg::SVR | reg::ESR => Write::Pass(value),
        reg::TIMER_INIT | reg::TIMER_DIV => Write::Pass(value),
        reg::LVT_TIMER | reg::LVT_ERROR => Write::Pass(value & !(0b111 << 8)),
        reg::LVT_THERMAL | reg::LVT_PERF | reg::LVT_CMCI | reg::LVT_LINT1 => {
            if matches!(mode, FIXED | NMI) {
                Write::Pass(value)
            } else {
                Write::Pass(value | MASKED)
            }
        }
        reg::LVT_LINT0 => {
            if matches!(mode, FIXED | NMI | EXTINT) {
                Write::Pass(value)
            } else {
                Write::Pass(value | MASKED)
            }
        }
        reg::ICR_HIGH => Write::IcrHigh(value),
        reg::ICR_LOW => Write::Ipi(ipi(value, icr_high)),
        _ => Write::Drop,
    }
}

/// The vector that `write` (a classified write at `offset`) may put into
/// some local APIC's IRR: a fixed LVT entry's (the timer and error entries
/// are always fixed) or a fixed IPI's (lowest priority is sent as fixed).
/// `None` for everything else: NMI, ExtINT and the other delivery modes
/// do not go through the IRR (SDM Vol. 3A §12.5.1, §12.6.1).
pub fn irr_vector(offset: u32, write: &Write) -> Option<u8> {
    let fixed = |v: u32| ((v >> 8) & 0b111 == FIXED).then_some((v & 0xFF) as u8);
    match (offset, write) {
        (
            reg::LVT_TIMER
            | reg::LVT_ERROR
            | reg::LVT_THERMAL
            | reg::LVT_PERF
            | reg::LVT_CMCI
            | reg::LVT_LINT0
            | reg::LVT_LINT1,
            Write::Pass(v),
        ) => fixed(*v),
        (_, Write::Ipi(Ipi::Send { icr_low, .. })) => fixed(*icr_low),
        _ => None,
    }
}

/// The IPI an ICR low write asks for.
fn ipi(low: u32, high: u32) -> Ipi {
    let mode = (low >> 8) & 0b111;
    let logical = low & (1 << 11) != 0;
    let shorthand = (low >> 18) & 0b11;
    let dest = high >> 24;
    match mode {
        FIXED | NMI => Ipi::Send {
            icr_low: low,
            icr_high: high,
        },
        // Lowest priority is a fixed interrupt to one of the targets; the
        // SDM leaves it model-specific, AMD keeps it: send it as fixed.
        LOWEST => Ipi::Send {
            icr_low: low & !(0b111 << 8),
            icr_high: high,
        },
        INIT if !logical && shorthand == 0 => {
            // Level de-assert (bit 14 clear) is the old INIT "de-assert"
            // message: no effect on a CPU (SDM §12.6.1).
            if low & (1 << 14) == 0 {
                Ipi::Dropped
            } else {
                Ipi::Init(dest)
            }
        }
        STARTUP if !logical && shorthand == 0 => Ipi::Startup {
            apic_id: dest,
            vector: (low & 0xFF) as u8,
        },
        _ => Ipi::Dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectors_that_can_reach_an_irr_are_told() {
        let vec_of =
            |offset: u32, value: u32| irr_vector(offset, &classify(offset, value, 1 << 24));
        // The timer and error entries are fixed whatever mode was asked.
        assert_eq!(vec_of(reg::LVT_TIMER, 0x0002_00EC), Some(0xEC));
        assert_eq!(vec_of(reg::LVT_ERROR, 0x0000_04FE), Some(0xFE));
        // The others in fixed mode only; NMI and ExtINT skip the IRR.
        assert_eq!(vec_of(reg::LVT_THERMAL, 0x0000_00FA), Some(0xFA));
        assert_eq!(vec_of(reg::LVT_LINT0, 0x0000_0031), Some(0x31));
        assert_eq!(vec_of(reg::LVT_LINT0, 0x0000_0700), None, "ExtINT");
        assert_eq!(vec_of(reg::LVT_LINT1, 0x0000_0400), None, "NMI");
        // Fixed and lowest-priority IPIs; NMI, INIT and STARTUP are not.
        assert_eq!(vec_of(reg::ICR_LOW, 0x0000_00FD), Some(0xFD));
        assert_eq!(vec_of(reg::ICR_LOW, 0x0004_00FB), Some(0xFB), "to self");
        assert_eq!(vec_of(reg::ICR_LOW, 0x0000_0141), Some(0x41), "lowest");
        assert_eq!(vec_of(reg::ICR_LOW, 0x0000_0402), None);
        assert_eq!(vec_of(reg::ICR_LOW, 0x0000_4500), None);
        assert_eq!(vec_of(reg::ICR_LOW, 0x0000_0608), None);
        // Registers that name no vector.
        assert_eq!(vec_of(reg::TPR, 0xEC), None);
        assert_eq!(vec_of(reg::SVR, 0x1FF), None, "spurious: never in the IRR");
        assert_eq!(vec_of(reg::ICR_HIGH, 0xEC), None);
    }

    #[test]
    fn registers_pass_or_drop() {
        for r in [
            reg::TPR,
            reg::EOI,
            reg::LDR,
            reg::DFR,
            reg::SVR,
            reg::TIMER_INIT,
        ] {
            assert_eq!(classify(r, 0x1FF, 0), Write::Pass(0x1FF), "{r:#x}");
        }
        for r in [reg::ID, 0x30, 0x100, 0x390, 0x3F0, 0x123, 0xFFC] {
            assert_eq!(classify(r, 5, 0), Write::Drop, "{r:#x}");
        }
        assert_eq!(classify(reg::ICR_HIGH, 3 << 24, 0), Write::IcrHigh(3 << 24));
    }

    #[test]
    fn lvt_entries_never_ask_for_smi_or_init() {
        // Linux: LINT0 ExtINT (virtual wire), LINT1 NMI, timer fixed.
        assert_eq!(classify(reg::LVT_LINT0, 0x700, 0), Write::Pass(0x700));
        assert_eq!(classify(reg::LVT_LINT1, 0x400, 0), Write::Pass(0x400));
        assert_eq!(classify(reg::LVT_TIMER, 0x2_00EC, 0), Write::Pass(0x2_00EC));
        // SMI (010), INIT (101), ExtINT off LINT0: masked.
        for (r, mode) in [
            (reg::LVT_LINT0, 0b010),
            (reg::LVT_LINT0, 0b101),
            (reg::LVT_LINT1, 0b111),
            (reg::LVT_PERF, 0b101),
            (reg::LVT_THERMAL, 0b010),
            (reg::LVT_CMCI, 0b111),
        ] {
            assert_eq!(
                classify(r, mode << 8 | 0x30, 0),
                Write::Pass(mode << 8 | 0x30 | MASKED),
                "{r:#x} mode {mode:#b}"
            );
        }
        // The timer and error entries have no delivery mode: cleared.
        assert_eq!(classify(reg::LVT_TIMER, 0x5EC, 0), Write::Pass(0xEC));
    }

    #[test]
    fn ipis() {
        let high = 2 << 24;
        // A fixed IPI (vector 0xFD) and an NMI go out with the kept high.
        assert_eq!(
            classify(reg::ICR_LOW, 0x40FD, high),
            Write::Ipi(Ipi::Send {
                icr_low: 0x40FD,
                icr_high: high
            })
        );
        assert!(matches!(
            classify(reg::ICR_LOW, 0x4400, high),
            Write::Ipi(Ipi::Send { .. })
        ));
        // Linux's wake-up: INIT assert, INIT de-assert, STARTUP x2.
        assert_eq!(
            classify(reg::ICR_LOW, 0xC500, high),
            Write::Ipi(Ipi::Init(2))
        );
        assert_eq!(
            classify(reg::ICR_LOW, 0x8500, high),
            Write::Ipi(Ipi::Dropped)
        );
        assert_eq!(
            classify(reg::ICR_LOW, 0x0699, high),
            Write::Ipi(Ipi::Startup {
                apic_id: 2,
                vector: 0x99
            })
        );
        // SMI, ExtINT, remote read; INIT in logical mode or by shorthand.
        for low in [0x0200u32, 0x0700, 0x0300, 0x4D00, 0xC_4500, 0x8_0600] {
            assert_eq!(
                classify(reg::ICR_LOW, low, high),
                Write::Ipi(Ipi::Dropped),
                "{low:#x}"
            );
        }
    }
}
