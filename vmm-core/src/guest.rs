//! Preparing guest RAM: the guest ELF, its first page tables and GDT.
//!
//! Guest-physical layout (guest RAM starts at 0):
//!
//! | GPA                | contents                                             |
//! |--------------------|------------------------------------------------------|
//! | `0x0000`           | unused (a null page)                                 |
//! | `0x1000`           | PML4                                                 |
//! | `0x2000`           | PDPT                                                 |
//! | `0x3000`           | PD: guest RAM identity-mapped with 2 MiB pages,      |
//! |                    | present, writable, supervisor-only                   |
//! | `0x4000`           | GDT (see [`GDT`])                                    |
//! | `0x20_0000` ...    | the guest's `PT_LOAD` segments (at their `p_paddr`)  |
//! | top of RAM         | initial RSP                                          |
//!
//! The guest starts in 64-bit mode at CPL 0 at its ELF entry point with
//! CR0 = PE|MP|ET|NE|WP|PG, CR4 = PAE|OSFXSR|OSXMMEXCPT, EFER = LME|LMA|NXE,
//! RFLAGS = 2 (interrupts off). Every segment of the image must lie inside
//! guest RAM above the tables.

use crate::elf::{Elf, ElfError};
use core::fmt;

/// Guest-physical address of the PML4.
pub const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
/// Guest-physical address of the GDT.
pub const GDT_BASE: u64 = 0x4000;
/// First guest-physical address a guest image may use.
pub const IMAGE_MIN: u64 = 0x10_0000;
/// Most guest RAM the initial tables can map (one PD).
pub const MAX_RAM: u64 = 1 << 30;

/// The initial GDT: null, kernel code (0x08), kernel data (0x10), user data
/// (0x18, DPL 3), user 64-bit code (0x20, DPL 3) — the order SYSRET wants.
/// Defined with its selectors in `vmm_shared::desc`, which the guest
/// runtime builds on.
pub const GDT: [u64; 5] = vmm_shared::desc::GUEST_GDT;
pub use vmm_shared::desc::{KERNEL_CS, KERNEL_DS};

/// CR0 at start: PE | MP | ET | NE | WP | PG.
pub const CR0: u64 = 1 | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 31);
/// CR4 at start: PAE | OSFXSR | OSXMMEXCPT.
pub const CR4: u64 = (1 << 5) | (1 << 9) | (1 << 10);
/// EFER at start: LME | LMA | NXE (a backend adds SVME where required).
pub const EFER: u64 = (1 << 8) | (1 << 10) | (1 << 11);

/// Which kind of guest runs, and so which policy the VMM applies (see
/// `docs/VMM-CORE.md`, "Guest profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A bare-metal image written for this VMM: no interrupts, HLT ends the
    /// run, COM1 is its only device.
    BareMetal,
    /// An unmodified Linux kernel ([`crate::linux`]): interrupts, HLT and
    /// the legacy PIC and PIT belong to the guest.
    Linux,
}

/// Where and how the guest starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestStart {
    /// Entry point (RIP).
    pub rip: u64,
    /// Initial RSP (top of guest RAM).
    pub rsp: u64,
    /// Initial RSI (Linux: the `boot_params` address).
    pub rsi: u64,
    /// CR3.
    pub cr3: u64,
    /// GDTR base.
    pub gdt_base: u64,
    /// GDTR limit.
    pub gdt_limit: u16,
    /// CS selector at entry.
    pub cs: u16,
    /// DS, ES, SS, FS and GS selector at entry.
    pub ds: u16,
    /// The GDT descriptor `cs` selects (its access rights seed the VMCS /
    /// VMCB segment attributes).
    pub code_descriptor: u64,
    /// The GDT descriptor `ds` selects.
    pub data_descriptor: u64,
    /// The policy the VMM applies to this guest.
    pub profile: Profile,
    /// `Some(segment)`: start in real mode at `segment:0` instead (CS =
    /// `segment`, base `segment << 4`, 64 KiB limits, paging and
    /// protection off, EFER 0): how an AP of a Linux guest starts after
    /// the STARTUP IPI its kernel sent (crate::lapic). The fields above
    /// but `profile` are then unused.
    pub real_segment: Option<u16>,
}

/// Why the guest image cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// The image is not a loadable ELF.
    Elf(ElfError),
    /// A segment falls outside guest RAM or over the VMM's tables.
    SegmentOutsideRam {
        /// Its physical address.
        paddr: u64,
        /// Its size in memory.
        memsz: u64,
    },
    /// Guest RAM is smaller than 2 MiB, larger than [`MAX_RAM`], or not a
    /// multiple of 2 MiB.
    BadRamSize(u64),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Elf(e) => write!(f, "guest image: {e}"),
            LoadError::SegmentOutsideRam { paddr, memsz } => write!(
                f,
                "guest segment at {paddr:#x} (+{memsz:#x}) is outside guest RAM [{IMAGE_MIN:#x}, end)"
            ),
            LoadError::BadRamSize(s) => write!(f, "guest RAM size {s:#x} is not supported"),
        }
    }
}

impl From<ElfError> for LoadError {
    fn from(e: ElfError) -> Self {
        LoadError::Elf(e)
    }
}

fn put_u64(ram: &mut [u8], at: u64, v: u64) {
    if let Some(dst) = usize::try_from(at)
        .ok()
        .and_then(|a| ram.get_mut(a..a.checked_add(8)?))
    {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// Load `image` into `ram` (guest-physical 0 is `ram\[0\]`) and build the
/// initial tables. `ram` is zeroed first.
pub fn prepare(ram: &mut [u8], image: &[u8]) -> Result<GuestStart, LoadError> {
    let size = ram.len() as u64;
    if !((2 << 20)..=MAX_RAM).contains(&size) || !size.is_multiple_of(2 << 20) {
        return Err(LoadError::BadRamSize(size));
    }
    let elf = Elf::parse(image)?;
    // Check every segment before writing anything.
    for seg in elf.segments() {
        let seg = seg?;
        let end = seg.paddr.checked_add(seg.memsz);
        if seg.paddr < IMAGE_MIN || end.is_none_or(|e| e > size) {
            return Err(LoadError::SegmentOutsideRam {
                paddr: seg.paddr,
                memsz: seg.memsz,
            });
        }
    }
    ram.fill(0);
    for seg in elf.segments() {
        let seg = seg?;
        let start = usize::try_from(seg.paddr).map_err(|_| LoadError::SegmentOutsideRam {
            paddr: seg.paddr,
            memsz: seg.memsz,
        })?;
        let bytes = elf.bytes(&seg);
        if let Some(dst) = start
            .checked_add(bytes.len())
            .and_then(|end| ram.get_mut(start..end))
        {
            dst.copy_from_slice(bytes);
        }
    }
    Ok(GuestStart {
        rip: elf.entry(),
        rsp: size,
        ..write_tables(ram, &GDT)
    })
}

/// Write the initial page tables (guest RAM identity-mapped with 2 MiB
/// pages: PML4\[0\] -> PDPT, PDPT\[0\] -> PD, PD\[i\] -> 2 MiB page i) and `gdt`
/// at [`GDT_BASE`]; returns a bare-metal start state using them, with
/// [`KERNEL_CS`]/[`KERNEL_DS`] and RIP/RSP/RSI 0 for the caller to fill.
pub fn write_tables(ram: &mut [u8], gdt: &[u64]) -> GuestStart {
    let size = ram.len() as u64;
    put_u64(ram, PML4, PDPT | 0x7);
    put_u64(ram, PDPT, PD | 0x7);
    let pages = size.min(MAX_RAM) / (2 << 20);
    for i in 0..pages {
        put_u64(ram, PD + i * 8, (i << 21) | 0x83);
    }
    for (i, d) in gdt.iter().enumerate() {
        put_u64(ram, GDT_BASE + (i as u64) * 8, *d);
    }
    GuestStart {
        rip: 0,
        rsp: 0,
        rsi: 0,
        cr3: PML4,
        gdt_base: GDT_BASE,
        gdt_limit: (gdt.len() * 8).saturating_sub(1) as u16,
        cs: KERNEL_CS,
        ds: KERNEL_DS,
        code_descriptor: GDT[1],
        data_descriptor: GDT[2],
        profile: Profile::BareMetal,
        real_segment: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    fn tiny_elf(paddr: u64, memsz: u64) -> std::vec::Vec<u8> {
        let mut f = vec![0u8; 0x1010];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16] = 2;
        f[20] = 1;
        f[18] = 62;
        f[24..32].copy_from_slice(&paddr.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54] = 56;
        f[56] = 1;
        f[64] = 1;
        f[72..80].copy_from_slice(&0x1000u64.to_le_bytes());
        f[88..96].copy_from_slice(&paddr.to_le_bytes());
        f[96..104].copy_from_slice(&0x10u64.to_le_bytes());
        f[104..112].copy_from_slice(&memsz.to_le_bytes());
        f[0x1000..0x1010].copy_from_slice(&[0xF4; 16]);
        f
    }

    #[test]
    fn loads_and_maps() {
        let mut ram = vec![0xEEu8; 4 << 20];
        let s = prepare(&mut ram, &tiny_elf(0x20_0000, 0x100)).unwrap();
        assert_eq!(s.rip, 0x20_0000);
        assert_eq!(s.rsp, 4 << 20);
        assert_eq!(&ram[0x20_0000..0x20_0010], &[0xF4; 16]);
        assert_eq!(ram[0x20_0010], 0, "bss is zeroed");
        assert_eq!(
            u64::from_le_bytes(ram[0x3008..0x3010].try_into().unwrap()),
            (1 << 21) | 0x83
        );
        assert_eq!(
            u64::from_le_bytes(ram[0x3010..0x3018].try_into().unwrap()),
            0,
            "only RAM is mapped"
        );
        assert_eq!(
            u64::from_le_bytes(ram[0x4008..0x4010].try_into().unwrap()),
            GDT[1]
        );
    }

    #[test]
    fn rejects_segments_outside_ram() {
        let mut ram = vec![0u8; 2 << 20];
        assert!(matches!(
            prepare(&mut ram, &tiny_elf(0x1000, 0x10)),
            Err(LoadError::SegmentOutsideRam { .. })
        ));
        assert!(matches!(
            prepare(&mut ram, &tiny_elf(0x1f_fff8, 0x10)),
            Err(LoadError::SegmentOutsideRam { .. })
        ));
        assert!(prepare(&mut ram, &tiny_elf(u64::MAX - 8, 0x10)).is_err());
        let mut small = vec![0u8; 0x1000];
        assert_eq!(
            prepare(&mut small, &tiny_elf(0x20_0000, 0x10)),
            Err(LoadError::BadRamSize(0x1000))
        );
        assert!(matches!(
            prepare(&mut ram, b"garbage"),
            Err(LoadError::Elf(_))
        ));
    }
}
