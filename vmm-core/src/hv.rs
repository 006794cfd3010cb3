//! Vendor-neutral hypervisor policy: what the guest sees of CPUID, and the
//! guest RAM the backends share.

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
use vmmcall::abi;

/// Bit 31 of CPUID.1:ECX: "a hypervisor is present" (reserved for this use
/// by both vendors).
pub const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.1:ECX.VMX (Intel SDM Vol. 3C §24.6).
pub const CPUID1_ECX_VMX: u32 = 1 << 5;
/// CPUID.1:ECX.XSAVE and OSXSAVE (bits 26, 27): not offered, since XCR0
/// is host state that neither vendor switches (XSETBV raises `#UD`).
pub const CPUID1_ECX_XSAVE: u32 = (1 << 26) | (1 << 27);
/// CPUID.8000_0001h:ECX.SVM (AMD APM Vol. 2 §15.4).
pub const CPUID_EXT1_ECX_SVM: u32 = 1 << 2;

/// What the guest gets for CPUID `leaf`/`subleaf`, given what the real CPU
/// answered:
/// - leaf 1: the hypervisor bit set, VMX hidden (no nested virtualization),
///   XSAVE/OSXSAVE hidden (XCR0 stays the host's);
/// - leaf `0x8000_0001`: SVM hidden;
/// - leaf `0x4000_0000`: EAX = `0x4000_0001` (highest hypervisor leaf),
///   EBX:ECX:EDX = the `vmmcall-rs` signature;
/// - leaf `0x4000_0001`: EAX = ABI version, EBX = `"VMMC"`;
/// - leaves `0x4000_0002..=0x4000_00FF`: all zero;
/// - anything else: the CPU's answer.
pub fn virtual_cpuid(leaf: u32, _subleaf: u32, real: Cpuid) -> Cpuid {
    match leaf {
        1 => Cpuid {
            ecx: (real.ecx | CPUID1_ECX_HYPERVISOR) & !(CPUID1_ECX_VMX | CPUID1_ECX_XSAVE),
            ..real
        },
        0x8000_0001 => Cpuid {
            ecx: real.ecx & !CPUID_EXT1_ECX_SVM,
            ..real
        },
        abi::CPUID_LEAF_SIGNATURE => {
            let (ebx, ecx, edx) = abi::cpuid_signature_words();
            Cpuid {
                eax: abi::CPUID_LEAF_INTERFACE,
                ebx,
                ecx,
                edx,
            }
        }
        abi::CPUID_LEAF_INTERFACE => Cpuid {
            eax: abi::ABI_VERSION,
            ebx: abi::CPUID_INTERFACE_MAGIC,
            ecx: 0,
            edx: 0,
        },
        0x4000_0002..=0x4000_00FF => Cpuid::default(),
        _ => real,
    }
}

/// The guest's RAM: guest-physical `[0, size)` is host-physical
/// `[host_base, host_base + size)`, identity-mapped in the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRam {
    /// Host-physical (and VMM-virtual) address of guest-physical 0.
    pub host_base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl GuestRam {
    /// The host address of `[gpa, gpa + len)` if all of it is guest RAM.
    pub fn host_range(&self, gpa: u64, len: u64) -> Option<u64> {
        let end = gpa.checked_add(len)?;
        if end > self.size {
            return None;
        }
        self.host_base.checked_add(gpa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_policy() {
        let real = Cpuid {
            eax: 1,
            ebx: 2,
            ecx: CPUID1_ECX_VMX | 1,
            edx: 4,
        };
        let v = virtual_cpuid(1, 0, real);
        assert_eq!(v.ecx, CPUID1_ECX_HYPERVISOR | 1);
        let v = virtual_cpuid(
            1,
            0,
            Cpuid {
                ecx: CPUID1_ECX_XSAVE | 2,
                ..real
            },
        );
        assert_eq!(v.ecx, CPUID1_ECX_HYPERVISOR | 2, "XSAVE and OSXSAVE hidden");
        assert_eq!((v.eax, v.ebx, v.edx), (1, 2, 4));
        let v = virtual_cpuid(0x8000_0001, 0, Cpuid { ecx: 0xff, ..real });
        assert_eq!(v.ecx, 0xff & !CPUID_EXT1_ECX_SVM);
        let v = virtual_cpuid(0x4000_0000, 0, real);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&v.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&v.ecx.to_le_bytes());
        sig[8..].copy_from_slice(&v.edx.to_le_bytes());
        assert_eq!(&sig, b"vmmcall-rs\0\0");
        assert_eq!(v.eax, 0x4000_0001);
        assert_eq!(virtual_cpuid(0x4000_0001, 0, real).eax, 1);
        assert_eq!(virtual_cpuid(0x4000_0042, 0, real), Cpuid::default());
        assert_eq!(virtual_cpuid(7, 0, real), real);
    }

    #[test]
    fn guest_ram_ranges() {
        let r = GuestRam {
            host_base: 0x400_0000,
            size: 0x200_0000,
        };
        assert_eq!(r.host_range(0, 0x200_0000), Some(0x400_0000));
        assert_eq!(r.host_range(0x1ff_ffff, 1), Some(0x5ff_ffff));
        assert_eq!(r.host_range(0x1ff_ffff, 2), None);
        assert_eq!(r.host_range(u64::MAX, 2), None);
    }
}
