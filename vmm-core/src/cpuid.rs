//! What the guest sees of CPUID, on both vendors: the real CPU's answer
//! through allow-lists of the features the VMM virtualizes, plus the
//! hypervisor leaves (`vmmcall::cpuid`).

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

use crate::cpu::Cpuid;
use vmmcall::cpuid::HypervisorCpuid;
pub use vmmcall::cpuid::CPUID1_ECX_HYPERVISOR;
use x86::controlregs::Cr4;

/// The hypervisor leaves (`0x4000_0000` and `0x4000_0001`): vmmcall's, with
/// its default base and signature.
pub const HYPERVISOR_LEAVES: HypervisorCpuid = HypervisorCpuid::new();
/// CPUID.1:ECX.VMX (Intel SDM Vol. 3C §24.6).
pub const CPUID1_ECX_VMX: u32 = 1 << 5;
/// CPUID.1:ECX.XSAVE and OSXSAVE (bits 26, 27): not offered, since XCR0
/// is host state that neither vendor switches (XSETBV raises `#UD`).
pub const CPUID1_ECX_XSAVE: u32 = (1 << 26) | (1 << 27);
/// CPUID.8000_0001h:ECX.SVM (AMD APM Vol. 2 §15.4).
pub const CPUID_EXT1_ECX_SVM: u32 = 1 << 2;
/// CPUID.1:EDX.PAT (bit 16).
pub const CPUID1_EDX_PAT: u32 = 1 << 16;

/// Features the guest may see in CPUID.1:ECX (Intel SDM Vol. 2A, CPUID,
/// Table 3-10): SSE3, PCLMULQDQ, SSSE3, CX16, SSE4.1, SSE4.2, MOVBE,
/// POPCNT, AES, RDRAND. Everything else is hidden because the VMM does not
/// virtualize it: MONITOR/MWAIT (an HLT the VMM cannot see), VMX and SMX
/// (no nested virtualization), EST/TM2/PDCM/DS-CPL/DTES64/xTPR/DCA
/// (thermal, performance and debug-store MSRs), PCID (INVPCID stays off on
/// VMX), x2APIC and TSC-deadline (no local APIC), XSAVE/OSXSAVE/AVX/FMA/F16C
/// (XCR0 is not switched).
pub const LEAF1_ECX_ALLOWED: u32 = (1 << 0)
    | (1 << 1)
    | (1 << 9)
    | (1 << 13)
    | (1 << 19)
    | (1 << 20)
    | (1 << 22)
    | (1 << 23)
    | (1 << 25)
    | (1 << 30);
/// Features the guest may see in CPUID.1:EDX (Table 3-11): FPU, VME, DE,
/// PSE, TSC, MSR, PAE, CX8, SEP, PGE, CMOV, PAT (where the backend switches
/// it), PSE-36, CLFSH, MMX, FXSR, SSE, SSE2, SS, HTT. Hidden: MCE/MCA (no
/// machine-check MSRs), APIC (no local APIC is mapped), MTRR (the memory
/// types are the VMM's), PN, DS, ACPI (thermal MSRs), TM, PBE.
pub const LEAF1_EDX_ALLOWED: u32 = (1 << 0)
    | (1 << 1)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 8)
    | (1 << 11)
    | (1 << 13)
    | (1 << 15)
    | CPUID1_EDX_PAT
    | (1 << 17)
    | (1 << 19)
    | (1 << 23)
    | (1 << 24)
    | (1 << 25)
    | (1 << 26)
    | (1 << 27)
    | (1 << 28);
/// CPUID.(7,0):EBX (Table 3-8): FSGSBASE, BMI1, SMEP, BMI2, ERMS, RDSEED,
/// ADX, SMAP, CLFLUSHOPT, CLWB, SHA. Hidden: TSC_ADJUST (an MSR), SGX,
/// HLE/RTM, AVX2 and AVX-512 (XCR0), INVPCID (off on VMX), MPX (BNDCFGS),
/// RDT, PT. CR4 bits among these are also dropped when VMX would refuse
/// them ([`CpuidPolicy::cr4_fixed1`]).
pub const LEAF7_EBX_ALLOWED: u32 = (1 << 0)
    | (1 << 3)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 18)
    | (1 << 19)
    | (1 << 20)
    | (1 << 23)
    | (1 << 24)
    | (1 << 29);
/// CPUID.(7,0):EDX: FSRM only (no speculation-control MSRs, which the VMM
/// does not switch).
pub const LEAF7_EDX_ALLOWED: u32 = 1 << 4;
/// CPUID.8000_0001h:ECX (AMD APM Vol. 3, Appendix E.3.6): LAHF/SAHF, ABM,
/// SSE4A, misaligned SSE, PREFETCHW. Hidden: SVM, CR8 in legacy mode,
/// OSVW, IBS, XOP, SKINIT, WDT, LWP, FMA4, TBM, topology and performance
/// counter extensions, MONITORX (MWAITX).
pub const EXT1_ECX_ALLOWED: u32 = (1 << 0) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8);
/// CPUID.8000_0001h:EDX: the leaf-1 bits AMD repeats here (same policy),
/// SYSCALL, NX, MMXEXT, 1 GiB pages, long mode, 3DNow!. Hidden: FFXSR
/// (EFER bit the VMM does not accept) and RDTSCP (TSC_AUX is not switched).
pub const EXT1_EDX_ALLOWED: u32 = (LEAF1_EDX_ALLOWED & 0x0183_FBFF)
    | (1 << 11)
    | (1 << 20)
    | (1 << 22)
    | (1 << 26)
    | (1 << 29)
    | (1 << 30)
    | (1 << 31);

/// CR4 bits (Intel SDM Vol. 3A §2.5) that CPUID features enable.
const CR4_FSGSBASE: u64 = Cr4::CR4_ENABLE_FSGSBASE.bits() as u64;
const CR4_SMEP: u64 = Cr4::CR4_ENABLE_SMEP.bits() as u64;
const CR4_SMAP: u64 = Cr4::CR4_ENABLE_SMAP.bits() as u64;

/// The CR4 bits every x86-64 CPU has (Intel SDM Vol. 3A §2.5): VME, PVI,
/// TSD, DE, PSE, PAE, MCE, PGE, PCE, OSFXSR, OSXMMEXCPT. KVM's
/// `CR4_RESERVED_BITS` leaves the same bits to every guest.
pub const CR4_BASE: u64 = 0x7FF;

/// The CR4 bits a guest may set, given the CPUID leaves 1 and 7 (subleaf
/// 0) it sees: [`CR4_BASE`], plus each feature bit whose CPUID feature the
/// guest is offered. Everything else raises `#GP(0)`, as on a CPU without
/// the feature (KVM's `kvm_is_valid_cr4`, `__cr4_reserved_bits`):
/// - FSGSBASE (7.EBX\[0\]), SMEP (7.EBX\[7\]), SMAP (7.EBX\[20\]);
/// - UMIP (7.ECX\[2\]), LA57 (7.ECX\[16\]), PKE (7.ECX\[3\]), CET (7.ECX\[7\]
///   shadow stacks or 7.EDX\[20\] IBT), PCIDE (1.ECX\[17\]), OSXSAVE
///   (1.ECX\[26\] XSAVE): only with their feature, which [`virtual_cpuid`]
///   hides today, so never;
/// - VMXE and SMXE: never (no nested virtualization; KVM also refuses
///   SMXE), nor any bit the SDM leaves reserved or another CPUID feature
///   gates (key locker, PKS, LAM, FRED, ...).
pub fn guest_cr4_allowed(leaf1: Cpuid, leaf7: Cpuid) -> u64 {
    let bit = |reg: u32, n: u32| reg & (1 << n) != 0;
    let mut allowed = CR4_BASE;
    for (offered, cr4) in [
        (bit(leaf7.ebx, 0), CR4_FSGSBASE),
        (bit(leaf7.ebx, 7), CR4_SMEP),
        (bit(leaf7.ebx, 20), CR4_SMAP),
        (bit(leaf7.ecx, 2), Cr4::CR4_ENABLE_UMIP.bits() as u64),
        (bit(leaf7.ecx, 16), Cr4::CR4_ENABLE_LA57.bits() as u64),
        (
            bit(leaf7.ecx, 3),
            Cr4::CR4_ENABLE_PROTECTION_KEY.bits() as u64,
        ),
        (bit(leaf7.ecx, 7) || bit(leaf7.edx, 20), 1 << 23),
        (bit(leaf1.ecx, 17), Cr4::CR4_ENABLE_PCID.bits() as u64),
        (bit(leaf1.ecx, 26), Cr4::CR4_ENABLE_OS_XSAVE.bits() as u64),
    ] {
        if offered {
            allowed |= cr4;
        }
    }
    allowed
}

/// Whether a guest's `MOV CR4, value` is valid: only `allowed` bits (see
/// [`guest_cr4_allowed`]), and PAE stays set in IA-32e mode (`long`;
/// Intel SDM Vol. 3A §2.5, AMD APM Vol. 2 §3.1.3). `false` is `#GP(0)`.
pub fn cr4_write_ok(value: u64, allowed: u64, long: bool) -> bool {
    value & !allowed == 0 && !(long && value & Cr4::CR4_ENABLE_PAE.bits() as u64 == 0)
}

/// [`guest_cr4_allowed`] for the CPUID [`virtual_cpuid`] answers on this
/// CPU under `policy`.
pub fn guest_cr4_allowed_here(real: impl Fn(u32, u32) -> Cpuid, policy: &CpuidPolicy) -> u64 {
    guest_cr4_allowed(
        virtual_cpuid(1, 0, real(1, 0), policy),
        virtual_cpuid(7, 0, real(7, 0), policy),
    )
}

/// What shapes the guest's CPUID beyond the fixed policy: what this
/// backend can virtualize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidPolicy {
    /// The backend switches IA32_PAT (SVM: always, G_PAT; VMX: with the
    /// load/save IA32_PAT controls). Without it PAT is hidden.
    pub pat: bool,
    /// VMX: IA32_VMX_CR4_FIXED1, the CR4 bits the guest may set. A feature
    /// whose CR4 bit is not allowed there is hidden. `None` on SVM.
    pub cr4_fixed1: Option<u64>,
    /// The guest has a local APIC (a Linux guest on several vCPUs,
    /// crate::lapic): CPUID.1:EDX.APIC is kept. Otherwise hidden.
    pub apic: bool,
}

impl CpuidPolicy {
    /// SVM: PAT is switched (G_PAT), CR4 is the guest's.
    pub const SVM: CpuidPolicy = CpuidPolicy {
        pat: true,
        cr4_fixed1: None,
        apic: false,
    };

    fn cr4_allows(&self, bit: u64) -> bool {
        self.cr4_fixed1.is_none_or(|f| f & bit != 0)
    }
}

/// CPUID.1:EDX bit 9: an on-chip local APIC.
pub const CPUID1_EDX_APIC: u32 = 1 << 9;

/// Highest basic leaf the guest sees: leaves above 0xD describe features
/// the VMM hides (PT, SGX, TSC/crystal frequency, ...).
pub const MAX_BASIC_LEAF: u32 = 0xD;
/// Highest extended leaf the guest sees.
pub const MAX_EXT_LEAF: u32 = 0x8000_0008;

/// What the guest gets for CPUID `leaf`/`subleaf`, given what the real CPU
/// answered and what the backend virtualizes. A feature the VMM does not
/// virtualize is hidden (the allow-lists above); in detail:
/// - leaf 0: the highest basic leaf is at most [`MAX_BASIC_LEAF`];
/// - leaf 1: the allowed ECX/EDX features, the hypervisor bit set;
/// - leaves 2, 4, 0xB (caches and topology): the CPU's answer;
/// - leaf 7 subleaf 0: the allowed EBX/EDX features, no subleaves; other
///   subleaves all zero;
/// - leaves 3, 5, 6, 8..=0xA, 0xC, 0xD (serial number, MONITOR, power,
///   performance monitoring, XSAVE): all zero;
/// - leaf `0x8000_0000`: at most [`MAX_EXT_LEAF`]; `0x8000_0001`: the
///   allowed ECX/EDX features; `0x8000_0002..=0x8000_0006` (brand string,
///   caches): the CPU's; `0x8000_0007`: only EDX bit 8 (invariant TSC);
///   `0x8000_0008`: address sizes and core count, no EBX features;
/// - leaves `0x4000_0000..=0x4000_00FF`: [`HYPERVISOR_LEAVES`]
///   (`vmmcall::cpuid`): EAX = `0x4000_0001` (highest hypervisor leaf),
///   EBX:ECX:EDX = the `vmmcall-rs` signature; then EAX = ABI version,
///   EBX = `"VMMC"`; then zeros;
/// - every other leaf (`0x4000_0002..`, `0x8000_0009..`, above
///   [`MAX_BASIC_LEAF`]): all zero.
pub fn virtual_cpuid(leaf: u32, subleaf: u32, real: Cpuid, policy: &CpuidPolicy) -> Cpuid {
    let zero = Cpuid::default();
    match leaf {
        0 => Cpuid {
            eax: real.eax.min(MAX_BASIC_LEAF),
            ..real
        },
        1 => {
            let mut edx = real.edx & LEAF1_EDX_ALLOWED;
            if !policy.pat {
                edx &= !CPUID1_EDX_PAT;
            }
            if policy.apic {
                edx |= real.edx & CPUID1_EDX_APIC;
            }
            Cpuid {
                ecx: (real.ecx & LEAF1_ECX_ALLOWED) | CPUID1_ECX_HYPERVISOR,
                edx,
                ..real
            }
        }
        2 | 4 | 0xB => real,
        7 if subleaf == 0 => {
            let mut ebx = real.ebx & LEAF7_EBX_ALLOWED;
            for (feature, cr4) in [
                (1u32 << 0, CR4_FSGSBASE),
                (1 << 7, CR4_SMEP),
                (1 << 20, CR4_SMAP),
            ] {
                if !policy.cr4_allows(cr4) {
                    ebx &= !feature;
                }
            }
            Cpuid {
                eax: 0,
                ebx,
                ecx: 0,
                edx: real.edx & LEAF7_EDX_ALLOWED,
            }
        }
        0x8000_0000 => Cpuid {
            eax: real.eax.min(MAX_EXT_LEAF),
            ..real
        },
        0x8000_0001 => {
            let mut edx = real.edx & EXT1_EDX_ALLOWED;
            if !policy.pat {
                edx &= !CPUID1_EDX_PAT;
            }
            Cpuid {
                ecx: real.ecx & EXT1_ECX_ALLOWED,
                edx,
                ..real
            }
        }
        0x8000_0002..=0x8000_0006 => real,
        0x8000_0007 => Cpuid {
            edx: real.edx & (1 << 8),
            ..zero
        },
        0x8000_0008 => Cpuid { ebx: 0, ..real },
        _ => HYPERVISOR_LEAVES.answer(leaf).unwrap_or(zero),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cr4_follows_what_cpuid_offers() {
        let all = Cpuid {
            eax: u32::MAX,
            ebx: u32::MAX,
            ecx: u32::MAX,
            edx: u32::MAX,
        };
        let none = Cpuid::default();
        // Nothing offered: the base bits only. OSXSAVE (18), PKE (22), CET
        // (23), PCIDE (17), VMXE (13), SMXE (14), LA57 (12), UMIP (11) are
        // all refused.
        assert_eq!(guest_cr4_allowed(none, none), 0x7FF);
        // Everything offered: still no VMXE, SMXE or undefined bit.
        let max = guest_cr4_allowed(all, all);
        assert_eq!(max, 0x7FF | (1 << 11) | (1 << 12) | (0xF7 << 16));
        assert_eq!(max & ((1 << 13) | (1 << 14)), 0);
        assert_eq!(max >> 24, 0);
        // The write check: allowed bits only, PAE kept in long mode.
        let pae = 1 << 5;
        assert!(cr4_write_ok(0x6A0, 0x7FF, true));
        assert!(!cr4_write_ok(0x6A0 | (1 << 18), 0x7FF, false), "OSXSAVE");
        assert!(!cr4_write_ok(0x6A0 | (1 << 22), 0x7FF, false), "PKE");
        assert!(!cr4_write_ok(0x6A0 & !pae, 0x7FF, true));
        assert!(cr4_write_ok(0x6A0 & !pae, 0x7FF, false));
        // Through the policy: on a CPU that has them all, the guest may
        // set FSGSBASE, SMEP, SMAP, and nothing CPUID hides (XSAVE, PKU,
        // CET, PCID, UMIP, LA57, VMX).
        let here = guest_cr4_allowed_here(|_, _| all, &CpuidPolicy::SVM);
        assert_eq!(here, 0x7FF | (1 << 16) | (1 << 20) | (1 << 21));
        // VMX that does not allow SMAP in CR4_FIXED1: CPUID hides SMAP, so
        // CR4.SMAP is refused too.
        let vmx = CpuidPolicy {
            pat: true,
            cr4_fixed1: Some(!(1u64 << 21)),
            apic: false,
        };
        assert_eq!(
            guest_cr4_allowed_here(|_, _| all, &vmx),
            0x7FF | (1 << 16) | (1 << 20)
        );
    }

    #[test]
    fn cpuid_policy() {
        let p = CpuidPolicy::SVM;
        let all = Cpuid {
            eax: 0xFFFF_FFFF,
            ebx: 0xFFFF_FFFF,
            ecx: 0xFFFF_FFFF,
            edx: 0xFFFF_FFFF,
        };
        let v = virtual_cpuid(1, 0, all, &p);
        assert_eq!(v.ecx, LEAF1_ECX_ALLOWED | CPUID1_ECX_HYPERVISOR);
        for hidden in [3, 5, 21, 24, 26, 27, 28] {
            assert_eq!(v.ecx & (1 << hidden), 0, "leaf 1 ECX bit {hidden}");
        }
        for hidden in [7, 9, 12, 14] {
            assert_eq!(v.edx & (1 << hidden), 0, "leaf 1 EDX bit {hidden}");
        }
        assert_eq!(
            (v.eax, v.ebx),
            (all.eax, all.ebx),
            "signature and APIC IDs kept"
        );
        let no_pat = CpuidPolicy {
            pat: false,
            cr4_fixed1: Some(!0),
            apic: false,
        };
        assert_eq!(virtual_cpuid(1, 0, all, &no_pat).edx & CPUID1_EDX_PAT, 0);
        assert_ne!(virtual_cpuid(1, 0, all, &p).edx & CPUID1_EDX_PAT, 0);
        // Leaf 7: no AVX2/AVX-512/LA57/speculation MSRs; CR4-gated bits
        // follow CR4_FIXED1.
        let l7 = virtual_cpuid(7, 0, all, &p);
        assert_eq!(
            (l7.eax, l7.ebx, l7.ecx, l7.edx),
            (0, LEAF7_EBX_ALLOWED, 0, 1 << 4)
        );
        let strict = CpuidPolicy {
            pat: true,
            cr4_fixed1: Some(!(CR4_SMEP | CR4_FSGSBASE)),
            apic: false,
        };
        let l7 = virtual_cpuid(7, 0, all, &strict);
        assert_eq!(l7.ebx & ((1 << 7) | 1), 0);
        assert_ne!(l7.ebx & (1 << 20), 0);
        assert_eq!(virtual_cpuid(7, 1, all, &p), Cpuid::default());
        let e1 = virtual_cpuid(0x8000_0001, 0, all, &p);
        assert_eq!(e1.ecx & CPUID_EXT1_ECX_SVM, 0);
        assert_eq!(e1.edx & (1 << 27), 0, "RDTSCP hidden");
        assert_ne!(e1.edx & (1 << 29), 0, "long mode kept");
        assert_eq!(virtual_cpuid(0, 0, all, &p).eax, MAX_BASIC_LEAF);
        assert_eq!(virtual_cpuid(0x8000_0000, 0, all, &p).eax, MAX_EXT_LEAF);
        for gone in [5, 6, 0xA, 0xD, 0x15, 0x16, 0x8000_000A, 0x8000_001F] {
            assert_eq!(
                virtual_cpuid(gone, 0, all, &p),
                Cpuid::default(),
                "leaf {gone:#x}"
            );
        }
        assert_eq!(virtual_cpuid(4, 1, all, &p), all);
        let v = virtual_cpuid(0x4000_0000, 0, all, &p);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&v.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&v.ecx.to_le_bytes());
        sig[8..].copy_from_slice(&v.edx.to_le_bytes());
        assert_eq!(&sig, b"vmmcall-rs\0\0");
        assert_eq!(v.eax, 0x4000_0001);
        assert_eq!(virtual_cpuid(0x4000_0001, 0, all, &p).eax, 1);
        assert_eq!(virtual_cpuid(0x4000_0042, 0, all, &p), Cpuid::default());
    }
}
