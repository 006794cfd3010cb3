//! The CPUID leaves by which guests find the VMM (`docs/ABI.md`,
//! "Detecting the VMM"), with the VMM's own signature and base leaf.
//!
//! A guest looks for this interface before it executes a hypercall
//! instruction (`guest_sdk::detect`): without one, the instruction raises
//! `#UD`. The VMM answers three things:
//!
//! - CPUID.1:ECX bit 31, "hypervisor present" ([`CPUID1_ECX_HYPERVISOR`]),
//!   which the VMM sets in its own leaf-1 answer;
//! - leaf `base` (by default `0x4000_0000`): EAX = `base + 1`, the highest
//!   leaf of the block; EBX, ECX, EDX = a 12-byte signature, the VMM's name
//!   (by default `"vmmcall-rs\0\0"`);
//! - leaf `base + 1`: EAX = the ABI version, EBX = `"VMMC"`
//!   ([`abi::CPUID_INTERFACE_MAGIC`](crate::abi::CPUID_INTERFACE_MAGIC)):
//!   this is what a guest recognises, whatever the signature.
//!
//! Leaves `base + 2 ..= base + 0xFF` are all zero. A VMM that has
//! hypervisor leaves of its own keeps them at `0x4000_0000` with its own
//! signature and puts this block higher, at a multiple of `0x100` (as KVM
//! moves to `0x4000_0100` next to Hyper-V's leaves); guests scan the bases
//! `0x4000_0000`, `0x4000_0100`, ... while each holds a block.
//!
//! ```
//! use vmmcall::cpuid::{HypervisorCpuid, Leaf};
//!
//! const HV: HypervisorCpuid = HypervisorCpuid::new().with_signature(*b"MyHypervisor");
//! let sig = HV.answer(0x4000_0000).unwrap();
//! assert_eq!(sig.eax, 0x4000_0001);
//! assert_eq!(&sig.ebx.to_le_bytes(), b"MyHy");
//! let interface = HV.answer(0x4000_0001).unwrap();
//! assert_eq!((interface.eax, interface.ebx), (1, u32::from_le_bytes(*b"VMMC")));
//! assert_eq!(HV.answer(0x4000_0002), Some(Leaf::default()));
//! assert_eq!(HV.answer(1), None, "not a hypervisor leaf: the VMM's own policy answers");
//! ```

use crate::abi::{ABI_VERSION, CPUID_INTERFACE_MAGIC, CPUID_LEAF_SIGNATURE, CPUID_SIGNATURE};

/// CPUID.1:ECX bit 31: "a hypervisor is present" (reserved for this use by
/// both vendors). The VMM sets it in its answer to leaf 1.
pub const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;

/// The hypervisor leaves live in `0x4000_0000 ..= 0x4000_FFFF`.
pub const HYPERVISOR_LEAVES: core::ops::RangeInclusive<u32> = 0x4000_0000..=0x4000_FFFF;

/// The size of one block of hypervisor leaves: bases are multiples of it.
pub const BLOCK: u32 = 0x100;

/// One CPUID answer: EAX, EBX, ECX, EDX.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Leaf {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// Why a [`HypervisorCpuid`] base was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseError {
    /// The base is not `0x4000_0000 + n * 0x100` for `n` in `0..=0xFF`.
    NotABlock(u32),
}

impl core::fmt::Display for BaseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BaseError::NotABlock(b) => write!(
                f,
                "CPUID base {b:#x} is not 0x4000_0000 plus a multiple of 0x100 below 0x4001_0000"
            ),
        }
    }
}

impl core::error::Error for BaseError {}

/// The VMM's hypervisor leaves: where they are and what name they show.
/// See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HypervisorCpuid {
    base: u32,
    signature: [u8; 12],
}

impl Default for HypervisorCpuid {
    fn default() -> Self {
        HypervisorCpuid::new()
    }
}

impl HypervisorCpuid {
    /// The defaults: base `0x4000_0000`, signature `"vmmcall-rs\0\0"`.
    pub const fn new() -> Self {
        HypervisorCpuid {
            base: CPUID_LEAF_SIGNATURE,
            signature: CPUID_SIGNATURE,
        }
    }

    /// The same leaves with the VMM's own 12-byte signature.
    pub const fn with_signature(self, signature: [u8; 12]) -> Self {
        HypervisorCpuid { signature, ..self }
    }

    /// The same leaves at another base: `0x4000_0000 + n * 0x100`.
    pub const fn with_base(self, base: u32) -> Result<Self, BaseError> {
        if base < CPUID_LEAF_SIGNATURE || base > 0x4000_FF00 || !base.is_multiple_of(BLOCK) {
            return Err(BaseError::NotABlock(base));
        }
        Ok(HypervisorCpuid { base, ..self })
    }

    /// The base leaf (the signature's).
    pub const fn base(&self) -> u32 {
        self.base
    }

    /// The signature.
    pub const fn signature(&self) -> [u8; 12] {
        self.signature
    }

    /// The answer to CPUID `leaf` if it is one of these leaves
    /// (`base ..= base + 0xFF`), else `None`: the VMM answers that leaf by
    /// its own policy. The subleaf (ECX) does not matter.
    pub const fn answer(&self, leaf: u32) -> Option<Leaf> {
        // base <= 0x4000_FF00 (with_base), so neither sum overflows.
        let Some(offset) = leaf.checked_sub(self.base) else {
            return None;
        };
        if offset >= BLOCK {
            return None;
        }
        let s = self.signature;
        Some(match offset {
            0 => Leaf {
                eax: self.base | 1,
                ebx: u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                ecx: u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
                edx: u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
            },
            1 => Leaf {
                eax: ABI_VERSION,
                ebx: CPUID_INTERFACE_MAGIC,
                ecx: 0,
                edx: 0,
            },
            _ => Leaf {
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 0,
            },
        })
    }
}

/// The interface as a guest found it with [`find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The block's base leaf.
    pub base: u32,
    /// The VMM's signature (EBX, ECX, EDX of the base leaf).
    pub signature: [u8; 12],
    /// The ABI version (EAX of `base + 1`).
    pub abi_version: u32,
}

/// The guest's half: find the interface with `cpuid` (which runs CPUID for
/// a leaf, subleaf 0), once the guest has seen CPUID.1:ECX bit 31.
///
/// Scans the bases `0x4000_0000`, `0x4000_0100`, ... `0x4000_FF00` while
/// each holds a block (its EAX, the block's highest leaf, lies in
/// `base + 1 ..= base + 0xFF`), and answers the first whose leaf `base + 1`
/// has EBX = `"VMMC"`. The signature is not checked: it is the VMM's
/// name, whatever it is. Stops at the first base without a block, so under
/// another hypervisor it costs two or three CPUIDs.
///
/// ```
/// use vmmcall::cpuid::{find, HypervisorCpuid, Leaf};
///
/// // Another hypervisor's leaves at 0x4000_0000, vmmcall's above them.
/// let theirs = HypervisorCpuid::new().with_signature(*b"Microsoft Hv");
/// let ours = HypervisorCpuid::new().with_base(0x4000_0100).unwrap();
/// let cpuid = |leaf: u32| match leaf {
///     0x4000_0001 => Leaf { eax: u32::from_le_bytes(*b"Hv#1"), ..Leaf::default() },
///     _ => theirs.answer(leaf).or(ours.answer(leaf)).unwrap_or_default(),
/// };
/// let found = find(cpuid).unwrap();
/// assert_eq!((found.base, found.abi_version), (0x4000_0100, 1));
/// assert_eq!(&found.signature, b"vmmcall-rs\0\0");
/// ```
pub fn find(mut cpuid: impl FnMut(u32) -> Leaf) -> Option<Found> {
    let mut base = CPUID_LEAF_SIGNATURE;
    loop {
        let head = cpuid(base);
        let first = base.checked_add(1)?;
        let last = base.checked_add(BLOCK - 1)?;
        if head.eax < first || head.eax > last {
            return None;
        }
        let interface = cpuid(first);
        if interface.ebx == CPUID_INTERFACE_MAGIC {
            let mut signature = [0u8; 12];
            for (to, word) in signature
                .chunks_exact_mut(4)
                .zip([head.ebx, head.ecx, head.edx])
            {
                to.copy_from_slice(&word.to_le_bytes());
            }
            return Some(Found {
                base,
                signature,
                abi_version: interface.eax,
            });
        }
        base = base
            .checked_add(BLOCK)
            .filter(|b| b <= HYPERVISOR_LEAVES.end())?;
    }
}

/// MAXPHYADDR, the physical-address width in bits, from EAX of CPUID leaf
/// `0x8000_0008` (bits 7:0), for [`PagingMode::maxphyaddr`]. A CPU
/// without that leaf has 36 bits (Intel SDM Vol. 3A §4.1.4); pass the
/// EAX the guest sees, or 0 if the leaf is absent.
///
/// [`PagingMode::maxphyaddr`]: crate::paging::PagingMode::maxphyaddr
pub const fn maxphyaddr(leaf_8000_0008_eax: u32) -> u8 {
    match (leaf_8000_0008_eax & 0xFF) as u8 {
        0 => 36,
        bits => bits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_leaves_are_the_abi_table() {
        let hv = HypervisorCpuid::new();
        let l = hv.answer(0x4000_0000).unwrap();
        let (b, c, d) = crate::abi::cpuid_signature_words();
        assert_eq!((l.eax, l.ebx, l.ecx, l.edx), (0x4000_0001, b, c, d));
        let l = hv.answer(0x4000_0001).unwrap();
        assert_eq!((l.eax, l.ebx, l.ecx, l.edx), (1, 0x434d_4d56, 0, 0));
        for zero in [0x4000_0002, 0x4000_0042, 0x4000_00FF] {
            assert_eq!(hv.answer(zero), Some(Leaf::default()), "{zero:#x}");
        }
        for not_ours in [0, 1, 0x3FFF_FFFF, 0x4000_0100, 0x8000_0000, u32::MAX] {
            assert_eq!(hv.answer(not_ours), None, "{not_ours:#x}");
        }
    }

    #[test]
    fn a_moved_block_with_its_own_signature() {
        let hv = HypervisorCpuid::new()
            .with_signature(*b"KVMKVMKVM\0\0\0")
            .with_base(0x4000_0100)
            .unwrap();
        assert_eq!(hv.answer(0x4000_0000), None);
        let l = hv.answer(0x4000_0100).unwrap();
        assert_eq!(l.eax, 0x4000_0101);
        assert_eq!(&l.ebx.to_le_bytes(), b"KVMK");
        assert_eq!(hv.answer(0x4000_0101).unwrap().ebx, CPUID_INTERFACE_MAGIC);
        assert_eq!(hv.answer(0x4000_0200), None);
        let top = HypervisorCpuid::new().with_base(0x4000_FF00).unwrap();
        assert_eq!(top.answer(0x4000_FFFF), Some(Leaf::default()));
        assert_eq!(top.answer(0x4000_FF00).unwrap().eax, 0x4000_FF01);
        for bad in [0, 0x3FFF_FF00, 0x4000_0010, 0x4001_0000, u32::MAX] {
            assert_eq!(
                HypervisorCpuid::new().with_base(bad),
                Err(BaseError::NotABlock(bad))
            );
        }
    }

    #[test]
    fn guests_find_the_block_wherever_it_is() {
        let plain = HypervisorCpuid::new();
        let found = find(|l| plain.answer(l).unwrap_or_default()).unwrap();
        assert_eq!((found.base, found.abi_version), (0x4000_0000, 1));
        assert_eq!(found.signature, CPUID_SIGNATURE);
        // No hypervisor leaves at all, or another hypervisor alone: none.
        assert_eq!(find(|_| Leaf::default()), None);
        let kvm = HypervisorCpuid::new().with_signature(*b"KVMKVMKVM\0\0\0");
        let only_kvm = |l: u32| match l {
            0x4000_0001 => Leaf {
                eax: 0x1234,
                ..Leaf::default()
            },
            _ => kvm.answer(l).unwrap_or_default(),
        };
        assert_eq!(find(only_kvm), None);
        // Garbage above the blocks ends the scan; the top block is found.
        let top = HypervisorCpuid::new().with_base(0x4000_FF00).unwrap();
        let chain = |l: u32| {
            top.answer(l).unwrap_or(Leaf {
                eax: (l & !0xFF) | 0x10,
                ..Leaf::default()
            })
        };
        assert_eq!(find(chain).map(|f| f.base), Some(0x4000_FF00));
        let mut asked = 0;
        assert_eq!(
            find(|_| {
                asked += 1;
                Leaf {
                    eax: u32::MAX,
                    ..Leaf::default()
                }
            }),
            None
        );
        assert_eq!(asked, 1, "an EAX beyond the block stops at once");
    }

    #[test]
    fn maxphyaddr_from_the_leaf() {
        assert_eq!(maxphyaddr(0x3030), 48);
        assert_eq!(maxphyaddr(0x2827), 39);
        assert_eq!(maxphyaddr(0), 36);
    }
}
