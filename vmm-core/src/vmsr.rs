//! MSRs the VMM emulates for the guest, on both vendors.
//!
//! [`crate::intercept`] lets the guest's own state MSRs through to the
//! hardware; every other `RDMSR`/`WRMSR` exits, and the run loop asks
//! [`read`] and [`write()`] what to do. The answer is one of: the guest's
//! own copy of a switched MSR (EFER, PAT, kept in the VMCB or VMCS), a
//! fixed value that tells the guest a feature is off, a write that is
//! dropped, or `#GP(0)`, as for an MSR the CPU does not have. No guest
//! value ever reaches a host MSR.
//!
//! | MSR | read | write |
//! |---|---|---|
//! | `IA32_EFER` (`C000_0080h`) | the guest's EFER (SVME hidden on SVM) | checked (SCE, LME, NXE; LME only with paging off), kept in the VMCB/VMCS |
//! | `IA32_PAT` (`277h`) | the guest's PAT, where the backend switches it | checked (memory types 0, 1, 4-7), kept |
//! | `IA32_MISC_ENABLE` (`1A0h`) | fast strings on, nothing else | dropped |
//! | `IA32_FEATURE_CONTROL` (`3Ah`) | locked, VMX off | `#GP` (locked) |
//! | AMD `VM_CR` (`C001_0114h`) | locked, SVM disabled | `#GP` |
//! | `IA32_BIOS_SIGN_ID` / AMD patch level (`8Bh`) | 0 (no microcode update) | dropped |
//! | `IA32_PLATFORM_ID` (`17h`) | 0 | `#GP` |
//! | AMD `HWCR` (`C001_0015h`) | TSC counts at P0 frequency (bit 24) | `#GP` |
//! | AMD `NB_CFG` (`C001_001Fh`) | 0 (no extended PCI configuration access) | dropped |
//! | AMD `INT_PENDING_MSG` (`C001_0055h`) | 0 (no C1E) | dropped |
//! | anything else | `#GP` | `#GP` |
//!
//! Intel SDM Vol. 4 (Model-Specific Registers) and AMD APM Vol. 2
//! Appendix A define these MSRs.

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

/// IA32_EFER.
pub const EFER: u32 = 0xC000_0080;
/// IA32_PAT.
pub const PAT: u32 = 0x277;
/// IA32_MISC_ENABLE.
pub const MISC_ENABLE: u32 = 0x1A0;
/// IA32_FEATURE_CONTROL.
pub const FEATURE_CONTROL: u32 = 0x3A;
/// AMD VM_CR.
pub const VM_CR: u32 = 0xC001_0114;
/// IA32_BIOS_SIGN_ID (Intel) / MSR_AMD64_PATCH_LEVEL (AMD).
pub const UCODE_REV: u32 = 0x8B;
/// IA32_PLATFORM_ID.
pub const PLATFORM_ID: u32 = 0x17;
/// AMD HWCR.
pub const HWCR: u32 = 0xC001_0015;
/// AMD NB_CFG (Linux sets its extended-configuration-space bit).
pub const NB_CFG: u32 = 0xC001_001F;
/// AMD interrupt-pending message (Linux's erratum-400 idle routine).
pub const INT_PENDING_MSG: u32 = 0xC001_0055;

/// EFER.SCE.
pub const EFER_SCE: u64 = 1 << 0;
/// EFER.LME.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE.
pub const EFER_NXE: u64 = 1 << 11;
/// EFER bits a guest may write.
pub const EFER_GUEST_BITS: u64 = EFER_SCE | EFER_LME | EFER_NXE;
/// CR0.PG.
const CR0_PG: u64 = 1 << 31;

/// The guest's switched MSRs, as the backend keeps them.
pub trait GuestMsrs {
    /// The guest's EFER as the guest sees it (LMA as the CPU set it).
    fn efer(&self) -> u64;
    /// Store a checked EFER value (guest bits plus the current LMA).
    fn set_efer(&mut self, efer: u64);
    /// The guest's CR0 (for the EFER.LME rule).
    fn cr0(&self) -> u64;
    /// The guest's PAT, or `None` when the backend does not switch PAT
    /// (CPUID then hides it).
    fn pat(&self) -> Option<u64>;
    /// Store a checked PAT value.
    fn set_pat(&mut self, pat: u64);
    /// IA32_APIC_BASE as the guest sees it, when it has a local APIC (a
    /// Linux guest on several vCPUs, crate::lapic): this CPU's, x2APIC
    /// mode hidden. `None` (the default): no APIC, the MSR raises `#GP`.
    fn apic_base(&self) -> Option<u64> {
        None
    }
}

/// IA32_APIC_BASE (SDM Vol. 3A §12.4.4).
pub const APIC_BASE: u32 = 0x1B;

/// The result of an emulated RDMSR/WRMSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrResult {
    /// RDMSR: this value goes to EDX:EAX. WRMSR: done (stored or dropped).
    Ok(u64),
    /// Raise `#GP(0)`.
    Gp,
}

/// Whether `pat` holds only valid memory types in each of its 8 bytes
/// (SDM Vol. 3A §13.12.2: 0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-; 2 and 3 are
/// reserved and a WRMSR with them raises #GP).
pub fn pat_valid(pat: u64) -> bool {
    pat.to_le_bytes()
        .iter()
        .all(|&t| matches!(t, 0 | 1 | 4..=7))
}

/// RDMSR `msr`.
pub fn read(msr: u32, state: &dyn GuestMsrs) -> MsrResult {
    match msr {
        EFER => MsrResult::Ok(state.efer()),
        PAT => state.pat().map_or(MsrResult::Gp, MsrResult::Ok),
        MISC_ENABLE => MsrResult::Ok(1),
        FEATURE_CONTROL => MsrResult::Ok(1),
        VM_CR => MsrResult::Ok((1 << 3) | (1 << 4)),
        UCODE_REV | PLATFORM_ID | NB_CFG | INT_PENDING_MSG => MsrResult::Ok(0),
        HWCR => MsrResult::Ok(1 << 24),
        APIC_BASE => state.apic_base().map_or(MsrResult::Gp, MsrResult::Ok),
        _ => MsrResult::Gp,
    }
}

/// WRMSR `msr` with `value`.
pub fn write(msr: u32, value: u64, state: &mut dyn GuestMsrs) -> MsrResult {
    match msr {
        EFER => {
            let old = state.efer();
            // Reserved bits, and (SDM Vol. 3A §10.8.5, APM Vol. 2 §14.6)
            // changing LME while paging is on, raise #GP.
            if value & !(EFER_GUEST_BITS | EFER_LMA) != 0
                || (state.cr0() & CR0_PG != 0 && (value ^ old) & EFER_LME != 0)
            {
                return MsrResult::Gp;
            }
            state.set_efer((value & EFER_GUEST_BITS) | (old & EFER_LMA));
            MsrResult::Ok(0)
        }
        PAT if state.pat().is_some() && pat_valid(value) => {
            state.set_pat(value);
            MsrResult::Ok(0)
        }
        MISC_ENABLE | UCODE_REV | NB_CFG | INT_PENDING_MSG => MsrResult::Ok(0),
        // The base, the enable and BSP bits stay what they are: writing
        // the value back is allowed (Linux does), anything else (moving
        // the page over RAM or the VMM's, x2APIC mode, disabling it for
        // good) is #GP, as for a reserved-bit write.
        APIC_BASE if state.apic_base() == Some(value) => MsrResult::Ok(0),
        _ => MsrResult::Gp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct State {
        efer: u64,
        cr0: u64,
        pat: Option<u64>,
    }

    impl GuestMsrs for State {
        fn efer(&self) -> u64 {
            self.efer
        }
        fn set_efer(&mut self, efer: u64) {
            self.efer = efer;
        }
        fn cr0(&self) -> u64 {
            self.cr0
        }
        fn pat(&self) -> Option<u64> {
            self.pat
        }
        fn set_pat(&mut self, pat: u64) {
            self.pat = Some(pat);
        }
    }

    struct WithApic(State);

    impl GuestMsrs for WithApic {
        fn efer(&self) -> u64 {
            self.0.efer
        }
        fn set_efer(&mut self, efer: u64) {
            self.0.efer = efer;
        }
        fn cr0(&self) -> u64 {
            self.0.cr0
        }
        fn pat(&self) -> Option<u64> {
            self.0.pat
        }
        fn set_pat(&mut self, pat: u64) {
            self.0.pat = Some(pat);
        }
        fn apic_base(&self) -> Option<u64> {
            Some(0xFEE0_0900)
        }
    }

    #[test]
    fn apic_base_is_read_only_and_only_with_an_apic() {
        let mut none = State {
            efer: 0,
            cr0: 0,
            pat: None,
        };
        assert_eq!(read(APIC_BASE, &none), MsrResult::Gp);
        assert_eq!(write(APIC_BASE, 0xFEE0_0900, &mut none), MsrResult::Gp);
        let mut apic = WithApic(State {
            efer: 0,
            cr0: 0,
            pat: None,
        });
        assert_eq!(read(APIC_BASE, &apic), MsrResult::Ok(0xFEE0_0900));
        assert_eq!(write(APIC_BASE, 0xFEE0_0900, &mut apic), MsrResult::Ok(0));
        // Moved, x2APIC mode (bit 10), disabled (bit 11 clear): #GP.
        for v in [0x1000_0900u64, 0xFEE0_0D00, 0xFEE0_0100] {
            assert_eq!(write(APIC_BASE, v, &mut apic), MsrResult::Gp, "{v:#x}");
        }
    }

    #[test]
    fn efer_rules() {
        let mut s = State {
            efer: EFER_LME | EFER_LMA | EFER_NXE,
            cr0: CR0_PG,
            pat: None,
        };
        assert_eq!(read(EFER, &s), MsrResult::Ok(0xD00));
        // SCE may change with paging on; LMA stays as the CPU set it.
        assert_eq!(
            write(EFER, EFER_SCE | EFER_LME | EFER_NXE, &mut s),
            MsrResult::Ok(0)
        );
        assert_eq!(s.efer, EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE);
        // LME may not change while paging is on; SVME and reserved bits never.
        assert_eq!(write(EFER, EFER_SCE | EFER_NXE, &mut s), MsrResult::Gp);
        assert_eq!(write(EFER, s.efer | (1 << 12), &mut s), MsrResult::Gp);
        assert_eq!(write(EFER, s.efer | (1 << 14), &mut s), MsrResult::Gp);
        assert_eq!(write(EFER, s.efer | (1 << 63), &mut s), MsrResult::Gp);
        // With paging off, LME may be set (the Linux decompressor does).
        let mut s = State {
            efer: 0,
            cr0: 1,
            pat: None,
        };
        assert_eq!(write(EFER, EFER_LME, &mut s), MsrResult::Ok(0));
        assert_eq!(s.efer, EFER_LME);
        // A write of LMA is ignored, not stored.
        assert_eq!(write(EFER, EFER_LME | EFER_LMA, &mut s), MsrResult::Ok(0));
        assert_eq!(s.efer, EFER_LME);
    }

    #[test]
    fn pat_rules() {
        let mut s = State {
            efer: 0,
            cr0: 0,
            pat: None,
        };
        assert_eq!(read(PAT, &s), MsrResult::Gp, "no PAT without the backend");
        assert_eq!(write(PAT, 0x0007_0406_0007_0406, &mut s), MsrResult::Gp);
        s.pat = Some(0x0007_0406_0007_0406);
        assert_eq!(write(PAT, 0x0001_0406_0007_0406, &mut s), MsrResult::Ok(0));
        assert_eq!(read(PAT, &s), MsrResult::Ok(0x0001_0406_0007_0406));
        assert_eq!(write(PAT, 0x0002_0406_0007_0406, &mut s), MsrResult::Gp);
        assert_eq!(write(PAT, 0x0300_0000_0000_0000, &mut s), MsrResult::Gp);
        assert!(pat_valid(0x0706_0504_0100_0706));
    }

    #[test]
    fn virtualization_is_off_and_the_rest_faults() {
        let mut s = State {
            efer: 0,
            cr0: 0,
            pat: None,
        };
        assert_eq!(read(FEATURE_CONTROL, &s), MsrResult::Ok(1));
        assert_eq!(write(FEATURE_CONTROL, 5, &mut s), MsrResult::Gp);
        assert_eq!(read(VM_CR, &s), MsrResult::Ok(0x18));
        assert_eq!(write(VM_CR, 0, &mut s), MsrResult::Gp);
        assert_eq!(read(MISC_ENABLE, &s), MsrResult::Ok(1));
        assert_eq!(write(MISC_ENABLE, 0xFFFF, &mut s), MsrResult::Ok(0));
        assert_eq!(
            read(MISC_ENABLE, &s),
            MsrResult::Ok(1),
            "writes are dropped"
        );
        for host in [0xC001_0117u32, 0x1B, 0x2FF, 0xFE, 0x10, 0x48, 0xC001_0131] {
            assert_eq!(read(host, &s), MsrResult::Gp, "{host:#x}");
            assert_eq!(write(host, 0, &mut s), MsrResult::Gp, "{host:#x}");
        }
    }
}
