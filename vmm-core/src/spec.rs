//! Speculative-execution mitigations around VM entry (docs/ABI.md,
//! "Speculation").
//!
//! What vmm-core does on hardware, decided once from the host CPU's CPUID
//! and `IA32_ARCH_CAPABILITIES` ([`decide`], portable and unit-tested):
//!
//! - **MDS / TAA** (Intel): where CPUID.(7,0):EDX\[10\] (`MD_CLEAR`) says
//!   that `VERW` clears the CPU's buffers and `ARCH_CAPABILITIES` does not
//!   say `MDS_NO`, the VMM executes `VERW` right before every VM entry, so
//!   no data the VMM touched is left in the store, fill or load buffers for
//!   the guest to sample (Intel's "Deep Dive: MDS"; KVM's
//!   `vmx_vcpu_enter_exit`, Xen's `VERW` on the return to guest).
//! - **L1TF** (Intel, VMX): where CPUID.(7,0):EDX\[28\] (`L1D_FLUSH`) offers
//!   `IA32_FLUSH_CMD` and `ARCH_CAPABILITIES` says neither `RDCL_NO` nor
//!   `SKIP_L1DFL_VMENTRY`, the VMM writes `IA32_FLUSH_CMD.L1D_FLUSH` before
//!   every VM entry, so a guest cannot read the VMM's data from the L1D
//!   through a not-present EPT or guest page-table entry. KVM flushes
//!   conditionally (`l1tf=flush`, "cond"), Xen always; the VMM's exits are
//!   few, so it always flushes (the `VERW` is then redundant and skipped,
//!   since the flush also clears the buffers: `SKIP_L1DFL_VMENTRY`'s
//!   definition).
//!
//! Under emulation (QEMU TCG, Bochs) the CPU reports neither feature, so
//! nothing runs and nothing costs: the boot log says which were chosen.
//! IBPB, IBRS/STIBP and the guest's own speculation controls are not
//! handled; docs/ABI.md says why and what that means.

/// CPUID.(7,0):EDX\[10\]: `VERW` clears CPU buffers.
pub const CPUID7_EDX_MD_CLEAR: u32 = 1 << 10;
/// CPUID.(7,0):EDX\[28\]: `IA32_FLUSH_CMD` exists.
pub const CPUID7_EDX_L1D_FLUSH: u32 = 1 << 28;
/// CPUID.(7,0):EDX\[29\]: `IA32_ARCH_CAPABILITIES` exists.
pub const CPUID7_EDX_ARCH_CAPABILITIES: u32 = 1 << 29;
/// `IA32_ARCH_CAPABILITIES` (Intel SDM Vol. 4, Table 2-2).
pub const MSR_ARCH_CAPABILITIES: u32 = 0x10A;
/// `IA32_FLUSH_CMD`; bit 0 flushes the L1 data cache.
pub const MSR_FLUSH_CMD: u32 = 0x10B;
/// `ARCH_CAPABILITIES.RDCL_NO`: not affected by L1TF (rogue data cache load).
pub const ARCH_CAP_RDCL_NO: u64 = 1 << 0;
/// `ARCH_CAPABILITIES.SKIP_L1DFL_VMENTRY`: no L1D flush needed on VM entry.
pub const ARCH_CAP_SKIP_L1DFL_VMENTRY: u64 = 1 << 3;
/// `ARCH_CAPABILITIES.MDS_NO`: not affected by MDS.
pub const ARCH_CAP_MDS_NO: u64 = 1 << 5;

/// What runs before each VM entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mitigations {
    /// `VERW` (MDS, TAA).
    pub verw: bool,
    /// `IA32_FLUSH_CMD.L1D_FLUSH` (L1TF; VMX only).
    pub l1d_flush: bool,
}

/// The mitigations for a host CPU whose CPUID.(7,0):EDX is `leaf7_edx`
/// and whose `IA32_ARCH_CAPABILITIES` reads `arch_caps` (`None` when
/// CPUID does not offer the MSR), for the VMX backend (`vmx`) or SVM.
pub const fn decide(leaf7_edx: u32, arch_caps: Option<u64>, vmx: bool) -> Mitigations {
    let caps = match arch_caps {
        Some(c) => c,
        None => 0,
    };
    let l1d_flush = vmx
        && leaf7_edx & CPUID7_EDX_L1D_FLUSH != 0
        && caps & (ARCH_CAP_RDCL_NO | ARCH_CAP_SKIP_L1DFL_VMENTRY) == 0;
    let verw = !l1d_flush && leaf7_edx & CPUID7_EDX_MD_CLEAR != 0 && caps & ARCH_CAP_MDS_NO == 0;
    Mitigations { verw, l1d_flush }
}

/// [`decide`] for this CPU, logged once (the boot log of every run says
/// what was chosen).
pub fn detect(vmx: bool) -> Mitigations {
    let m = if crate::cpu::cpuid(0, 0).eax < 7 {
        Mitigations::default()
    } else {
        let edx = crate::cpu::cpuid(7, 0).edx;
        let caps = (edx & CPUID7_EDX_ARCH_CAPABILITIES != 0).then(|| {
            // SAFETY: CPUID says IA32_ARCH_CAPABILITIES exists; reading it
            // has no side effect.
            unsafe { crate::cpu::rdmsr(MSR_ARCH_CAPABILITIES) }
        });
        decide(edx, caps, vmx)
    };
    log::info!(
        "speculation: L1D flush before entry: {}, VERW before entry: {}",
        if m.l1d_flush { "yes" } else { "no" },
        if m.verw { "yes" } else { "no" }
    );
    m
}

/// Run the chosen mitigations: call it last before VMLAUNCH/VMRESUME or
/// VMRUN, after the VMM's last access to its own data.
#[inline]
pub fn before_entry(m: Mitigations) {
    if m.l1d_flush {
        // SAFETY: `decide` chose this only where CPUID offers
        // IA32_FLUSH_CMD; writing L1D_FLUSH only writes back and
        // invalidates the L1D.
        unsafe { crate::cpu::wrmsr(MSR_FLUSH_CMD, 1) };
    }
    if m.verw {
        let ds: u16;
        // SAFETY: reading DS has no effect.
        unsafe {
            core::arch::asm!("mov {0:x}, ds", out(reg) ds, options(nomem, nostack, preserves_flags))
        };
        // Only the memory-operand form clears the buffers; the selector is
        // the VMM's own valid data segment (VERW only sets ZF).
        // SAFETY: VERW reads two bytes of `ds` and changes only RFLAGS.ZF.
        unsafe { core::arch::asm!("verw word ptr [{0}]", in(reg) &ds, options(readonly, nostack)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulators_get_nothing() {
        // QEMU's qemu64 and Bochs report neither MD_CLEAR nor L1D_FLUSH.
        assert_eq!(decide(0, None, true), Mitigations::default());
        assert_eq!(decide(0, None, false), Mitigations::default());
    }

    #[test]
    fn affected_intel_flushes_l1d_on_vmx_and_verws_on_svm_paths() {
        let edx = CPUID7_EDX_MD_CLEAR | CPUID7_EDX_L1D_FLUSH;
        // Skylake-era: L1TF and MDS affected, no ARCH_CAPABILITIES.
        let m = decide(edx, None, true);
        assert_eq!(
            m,
            Mitigations {
                verw: false,
                l1d_flush: true
            }
        );
        // The same CPU without the L1D flush control: VERW.
        assert!(decide(CPUID7_EDX_MD_CLEAR, None, true).verw);
        // SVM never flushes L1D (L1TF is Intel's); MD_CLEAR still VERWs.
        assert_eq!(
            decide(edx, None, false),
            Mitigations {
                verw: true,
                l1d_flush: false
            }
        );
    }

    #[test]
    fn immune_parts_get_nothing() {
        let edx = CPUID7_EDX_MD_CLEAR | CPUID7_EDX_L1D_FLUSH | CPUID7_EDX_ARCH_CAPABILITIES;
        let caps = ARCH_CAP_RDCL_NO | ARCH_CAP_SKIP_L1DFL_VMENTRY | ARCH_CAP_MDS_NO;
        assert_eq!(decide(edx, Some(caps), true), Mitigations::default());
        // Not L1TF-affected but MDS-affected: VERW only.
        assert_eq!(
            decide(edx, Some(ARCH_CAP_RDCL_NO), true),
            Mitigations {
                verw: true,
                l1d_flush: false
            }
        );
    }
}
