//! Booting an unmodified Linux kernel as the guest (the "Linux profile").
//!
//! `cargo xtask linux` hands the VMM one boot module, a *bundle*: the
//! kernel's bzImage, a gzip'ed newc initramfs and the kernel command line,
//! behind a 64-byte header ([`vmm_shared::bundle`], read by
//! [`Bundle::parse`]). One module works for both loaders: QEMU's PVH passes
//! a single `-initrd`, GRUB a `module2`.
//!
//! The VMM boots the kernel through the **64-bit entry of the x86 boot
//! protocol** (Linux `Documentation/x86/boot.rst`, "64-bit Boot Protocol"):
//! it loads the protected-mode part of the bzImage at the kernel's
//! preferred address, fills a `boot_params` ("zero page",
//! `Documentation/x86/zero-page.rst`) with the setup header, an E820 map,
//! the command line and the initramfs, and enters at `load address +
//! 0x200` in 64-bit mode with RSI pointing at `boot_params`, interrupts
//! off, flat `__BOOT_CS` (0x10) and `__BOOT_DS` (0x18) and an identity
//! map of guest RAM.
//!
//! Why that entry: the 16-bit real-mode entry needs a BIOS, and the 32-bit
//! entry needs paging off at the first instruction. The 64-bit entry runs
//! from the same long-mode state the VMM gives bare-metal guests. The
//! kernel's decompressor (v6.1) then still switches to 32-bit mode with
//! paging off for a few instructions (its 5-level paging trampoline), so
//! on VMX the Linux profile needs "unrestricted guest" (SDM Vol. 3C
//! §26.6.2); SVM runs paging-off guests under nested paging natively.
//!
//! Guest-physical layout:
//!
//! | GPA                    | contents                                     |
//! |------------------------|----------------------------------------------|
//! | `0x1000`..`0x4000`     | PML4, PDPT, PD: guest RAM identity-mapped    |
//! | `0x4000`               | GDT: null, null, `__BOOT_CS`, `__BOOT_DS`    |
//! | `0x7000`               | `boot_params`                                |
//! | `0x2_0000`             | the command line                             |
//! | `0x9_F000`..`0x10_0000`| reserved in the E820 map (where a PC has its |
//! |                        | EBDA, VGA window and BIOS; zeroed RAM here)  |
//! | kernel's preferred address (16 MiB) | the protected-mode kernel, then |
//! |                        | its `init_size` of decompression room        |
//! | top of RAM             | the initramfs, page-aligned                  |

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

use crate::guest::{self, GuestStart, Profile};
use core::fmt;
use vmm_shared::bundle::Header;
use vmm_shared::bzimage::{
    CMDLINE_SIZE, CMD_LINE_PTR, CODE32_START, ENTRY_64, HDR_MAGIC, HDR_START, HEADER,
    INITRD_ADDR_MAX, INIT_SIZE, JUMP_END, KERNEL_ALIGNMENT, LOADED_HIGH, LOADFLAGS, MIN_PROTOCOL,
    PREF_ADDRESS, RAMDISK_IMAGE, RAMDISK_SIZE, RELOCATABLE, SETUP_SECTS, TYPE_OF_LOADER, VERSION,
    XLF_KERNEL_64, XLOADFLAGS,
};
use vmm_shared::desc::{KERNEL_CODE64, KERNEL_DATA};

/// Guest-physical address of `boot_params`.
pub const BOOT_PARAMS: u64 = 0x7000;
/// Guest-physical address of the command line.
pub const CMDLINE: u64 = 0x2_0000;
/// Longest command line the layout has room for (up to the reserved area).
pub const CMDLINE_MAX: u64 = 0x9_F000 - CMDLINE;
/// Start of the reserved legacy area in the E820 map.
pub const LEGACY_START: u64 = 0x9_F000;
/// End of the legacy area (1 MiB).
pub const LEGACY_END: u64 = 0x10_0000;
/// `boot_params.acpi_rsdp_addr` (boot protocol 2.14+, `zero-page.rst`:
/// offset 0x070, 8 bytes): where Linux finds the RSDP without scanning.
pub const ACPI_RSDP_ADDR: u64 = 0x070;

/// Give a Linux guest the ACPI tables that describe its `apic_ids` vCPUs
/// (crate::acpi::guest_tables), in the reserved range at
/// [`crate::acpi::GUEST_TABLES`], and point `boot_params` at them.
pub fn describe_cpus(ram: &mut [u8], apic_ids: &[u32]) -> Result<(), crate::acpi::BuildError> {
    let mut tables = [0u8; 512];
    let base = crate::acpi::GUEST_TABLES;
    let len = crate::acpi::guest_tables(apic_ids, base, &mut tables)?;
    put(ram, base, tables.get(..len).unwrap_or(&[]));
    put(
        ram,
        BOOT_PARAMS.wrapping_add(ACPI_RSDP_ADDR),
        &base.to_le_bytes(),
    );
    Ok(())
}
/// Smallest guest RAM the Linux profile accepts.
pub const MIN_RAM: u64 = 64 << 20;

/// The Linux boot protocol's `__BOOT_CS`.
pub const BOOT_CS: u16 = 0x10;
/// The Linux boot protocol's `__BOOT_DS`.
pub const BOOT_DS: u16 = 0x18;
/// The GDT the kernel is entered with: `__BOOT_CS` (64-bit code) and
/// `__BOOT_DS` (flat data) at the selectors the boot protocol names.
pub const GDT: [u64; 4] = [0, 0, KERNEL_CODE64, KERNEL_DATA];

// Offsets in boot_params beyond the setup header (the setup header's are
// vmm_shared::bzimage; Documentation/arch/x86/zero-page.rst).
const EXT_RAMDISK_IMAGE: usize = 0x0C0;
const EXT_RAMDISK_SIZE: usize = 0x0C4;
const EXT_CMD_LINE_PTR: usize = 0x0C8;
const E820_ENTRIES: usize = 0x1E8;
const E820_TABLE: usize = 0x2D0;
/// E820 types.
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// Why a Linux bundle cannot be booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinuxError {
    /// The bundle header is short or its offsets point outside the module.
    BadBundle,
    /// The kernel is not a bzImage (no `HdrS` at 0x202) or is too short.
    NotBzImage,
    /// The boot protocol is older than 2.12, or lacks the 64-bit entry
    /// (xloadflags bit 0) or `LOADED_HIGH`.
    Unsupported {
        /// The kernel's boot protocol version.
        version: u16,
    },
    /// The bundle asks for a guest RAM size the VMM cannot give
    /// (below [`MIN_RAM`], above [`guest::MAX_RAM`], not a multiple of
    /// 2 MiB) or the machine lacks.
    BadRamSize(u64),
    /// The kernel, its decompression room, the initramfs and the command
    /// line do not fit in guest RAM together.
    TooBig {
        /// Bytes needed.
        need: u64,
        /// Guest RAM.
        ram: u64,
    },
    /// The command line is longer than the kernel accepts or the layout
    /// has room for.
    CmdlineTooLong(u64),
}

impl fmt::Display for LinuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinuxError::BadBundle => f.write_str("the Linux bundle's header is malformed"),
            LinuxError::NotBzImage => f.write_str("the kernel is not a bzImage (no HdrS header)"),
            LinuxError::Unsupported { version } => write!(
                f,
                "the kernel's boot protocol {}.{:02} lacks the 64-bit entry (needs 2.12+ with XLF_KERNEL_64)",
                version >> 8,
                version & 0xFF
            ),
            LinuxError::BadRamSize(s) => write!(f, "guest RAM size {s:#x} is not supported"),
            LinuxError::TooBig { need, ram } => write!(
                f,
                "the kernel, its decompression room and the initramfs need {need:#x} bytes, more than the {ram:#x} of guest RAM"
            ),
            LinuxError::CmdlineTooLong(n) => write!(f, "the command line ({n} bytes) is too long"),
        }
    }
}

/// The parts of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// Guest RAM to give the kernel, in bytes.
    pub ram: u64,
    /// The bzImage.
    pub kernel: &'a [u8],
    /// The initramfs (may be empty).
    pub initrd: &'a [u8],
    /// The command line, without NUL.
    pub cmdline: &'a [u8],
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn put(b: &mut [u8], at: u64, bytes: &[u8]) {
    if let Some(dst) = usize::try_from(at)
        .ok()
        .and_then(|a| b.get_mut(a..a.checked_add(bytes.len())?))
    {
        dst.copy_from_slice(bytes);
    }
}

impl<'a> Bundle<'a> {
    /// Whether `module` starts with the bundle magic.
    pub fn is_bundle(module: &[u8]) -> bool {
        module.starts_with(&vmm_shared::bundle::MAGIC)
    }

    /// Split a bundle into its parts. Every offset and length is checked
    /// against the module.
    pub fn parse(module: &'a [u8]) -> Result<Self, LinuxError> {
        let h = Header::parse(module).ok_or(LinuxError::BadBundle)?;
        let part = |p: vmm_shared::bundle::Part| p.of(module).ok_or(LinuxError::BadBundle);
        Ok(Bundle {
            ram: u64::from(h.ram_mib) << 20,
            kernel: part(h.kernel)?,
            initrd: part(h.initrd)?,
            cmdline: part(h.cmdline)?,
        })
    }
}

/// What the setup header of a bzImage says about loading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupHeader {
    /// Boot protocol version.
    pub version: u16,
    /// Offset of the protected-mode kernel in the file.
    pub kernel_offset: usize,
    /// Where the kernel wants to be loaded.
    pub load_addr: u64,
    /// Memory the kernel needs from its load address to decompress.
    pub init_size: u64,
    /// Highest address the initramfs may end at (inclusive).
    pub initrd_addr_max: u64,
    /// Longest command line the kernel accepts.
    pub cmdline_size: u64,
    /// End of the setup header in the file (for copying it).
    pub header_end: usize,
}

impl SetupHeader {
    /// Read and check the setup header of `kernel`.
    pub fn parse(kernel: &[u8]) -> Result<Self, LinuxError> {
        if kernel.get(HEADER..HEADER + 4) != Some(&HDR_MAGIC[..]) {
            return Err(LinuxError::NotBzImage);
        }
        let version = le_u16(kernel, VERSION).ok_or(LinuxError::NotBzImage)?;
        let loadflags = *kernel.get(LOADFLAGS).ok_or(LinuxError::NotBzImage)?;
        let xloadflags = le_u16(kernel, XLOADFLAGS).unwrap_or(0);
        if version < MIN_PROTOCOL || loadflags & LOADED_HIGH == 0 || xloadflags & XLF_KERNEL_64 == 0
        {
            return Err(LinuxError::Unsupported { version });
        }
        let sects = match *kernel.get(SETUP_SECTS).ok_or(LinuxError::NotBzImage)? {
            0 => 4,
            n => usize::from(n),
        };
        let kernel_offset = sects.saturating_add(1).saturating_mul(512);
        let header_end = JUMP_END.saturating_add(1).saturating_add(usize::from(
            *kernel.get(JUMP_END).ok_or(LinuxError::NotBzImage)?,
        ));
        if kernel_offset >= kernel.len() || header_end > kernel_offset {
            return Err(LinuxError::NotBzImage);
        }
        let relocatable = kernel.get(RELOCATABLE).copied().unwrap_or(0) != 0;
        let align = u64::from(le_u32(kernel, KERNEL_ALIGNMENT).unwrap_or(0));
        let pref = le_u64(kernel, PREF_ADDRESS).unwrap_or(0);
        // A relocatable kernel goes at its preferred address when that is
        // aligned as it asks; otherwise at the classic 1 MiB.
        let load_addr = if relocatable
            && pref != 0
            && align.is_power_of_two()
            && pref & (align.wrapping_sub(1)) == 0
        {
            pref
        } else {
            LEGACY_END
        };
        Ok(SetupHeader {
            version,
            kernel_offset,
            load_addr,
            init_size: u64::from(le_u32(kernel, INIT_SIZE).unwrap_or(0)),
            initrd_addr_max: u64::from(le_u32(kernel, INITRD_ADDR_MAX).unwrap_or(0x37FF_FFFF)),
            cmdline_size: u64::from(le_u32(kernel, CMDLINE_SIZE).unwrap_or(255)),
            header_end,
        })
    }
}

/// The E820 map for `ram` bytes of guest RAM: low RAM, the reserved
/// legacy area, RAM from 1 MiB to the end.
pub fn e820(ram: u64) -> [(u64, u64, u32); 3] {
    [
        (0, LEGACY_START, E820_RAM),
        (LEGACY_START, LEGACY_END - LEGACY_START, E820_RESERVED),
        (LEGACY_END, ram.saturating_sub(LEGACY_END), E820_RAM),
    ]
}

/// Load the bundle's kernel into `ram` (guest-physical 0 is `ram[0]`,
/// zeroed first), fill `boot_params`, and say where to start.
pub fn prepare(ram: &mut [u8], bundle: &Bundle<'_>) -> Result<GuestStart, LinuxError> {
    let size = ram.len() as u64;
    if !(MIN_RAM..=guest::MAX_RAM).contains(&size) || !size.is_multiple_of(2 << 20) {
        return Err(LinuxError::BadRamSize(size));
    }
    let hdr = SetupHeader::parse(bundle.kernel)?;
    let cmdline_len = bundle.cmdline.len() as u64;
    if cmdline_len >= CMDLINE_MAX || cmdline_len >= hdr.cmdline_size.saturating_add(1) {
        return Err(LinuxError::CmdlineTooLong(cmdline_len));
    }
    let pm = bundle
        .kernel
        .get(hdr.kernel_offset..)
        .ok_or(LinuxError::NotBzImage)?;
    let kernel_end = hdr
        .load_addr
        .checked_add((pm.len() as u64).max(hdr.init_size))
        .ok_or(LinuxError::TooBig {
            need: u64::MAX,
            ram: size,
        })?;
    // The initramfs goes as high as it may, page-aligned, above the kernel.
    let initrd_len = bundle.initrd.len() as u64;
    let top = size.min(hdr.initrd_addr_max.saturating_add(1));
    let initrd_at = top.saturating_sub(initrd_len) & !0xFFF;
    if kernel_end > size || initrd_at < kernel_end || top < initrd_len {
        return Err(LinuxError::TooBig {
            need: kernel_end.saturating_add(initrd_len),
            ram: size,
        });
    }

    // All of guest RAM is zeroed: besides leaving the guest nothing of
    // what ran before, the boot loader's memory (GRUB's heap holds its
    // configuration, the VMM's command line with the run's verdict secret)
    // may lie in the range the allocator hands out as guest RAM.
    ram.fill(0);
    put(ram, hdr.load_addr, pm);
    put(ram, initrd_at, bundle.initrd);
    put(ram, CMDLINE, bundle.cmdline);

    // boot_params: the setup header as the kernel has it, then what the
    // boot loader fills in.
    let mut bp = [0u8; 4096];
    if let (Some(dst), Some(src)) = (
        bp.get_mut(HDR_START..hdr.header_end),
        bundle.kernel.get(HDR_START..hdr.header_end),
    ) {
        dst.copy_from_slice(src);
    }
    let w32 =
        |bp: &mut [u8; 4096], at: usize, v: u64| put(bp, at as u64, &(v as u32).to_le_bytes());
    if let Some(b) = bp.get_mut(TYPE_OF_LOADER) {
        *b = 0xFF; // "undefined" boot loader
    }
    w32(&mut bp, CODE32_START, hdr.load_addr);
    w32(&mut bp, RAMDISK_IMAGE, initrd_at);
    w32(&mut bp, EXT_RAMDISK_IMAGE, initrd_at >> 32);
    w32(&mut bp, RAMDISK_SIZE, initrd_len);
    w32(&mut bp, EXT_RAMDISK_SIZE, initrd_len >> 32);
    w32(&mut bp, CMD_LINE_PTR, CMDLINE);
    w32(&mut bp, EXT_CMD_LINE_PTR, 0);
    let map = e820(size);
    if let Some(n) = bp.get_mut(E820_ENTRIES) {
        *n = map.len() as u8;
    }
    for (i, (addr, len, kind)) in map.iter().enumerate() {
        let at = E820_TABLE.wrapping_add(i.wrapping_mul(20)) as u64;
        put(&mut bp, at, &addr.to_le_bytes());
        put(&mut bp, at.wrapping_add(8), &len.to_le_bytes());
        put(&mut bp, at.wrapping_add(16), &kind.to_le_bytes());
    }
    put(ram, BOOT_PARAMS, &bp);

    let tables = guest::write_tables(ram, &GDT);
    Ok(GuestStart {
        rip: hdr.load_addr.wrapping_add(ENTRY_64),
        // The kernel sets up its own stack at once; this one is below
        // boot_params, in low RAM the kernel reserves.
        rsp: BOOT_PARAMS,
        rsi: BOOT_PARAMS,
        cs: BOOT_CS,
        ds: BOOT_DS,
        code_descriptor: GDT[2],
        data_descriptor: GDT[3],
        profile: Profile::Linux,
        real_segment: None,
        ..tables
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// A synthetic bzImage: 2 setup sectors + 1 boot sector, then `pm`
    /// bytes of "protected-mode kernel".
    fn bzimage(version: u16, pm: usize, init_size: u32) -> Vec<u8> {
        let mut k = vec![0u8; 3 * 512 + pm];
        k[SETUP_SECTS] = 2;
        k[JUMP_END] = (0x26C - 0x202) as u8;
        k[HEADER..HEADER + 4].copy_from_slice(HDR_MAGIC);
        k[VERSION..VERSION + 2].copy_from_slice(&version.to_le_bytes());
        k[LOADFLAGS] = LOADED_HIGH;
        k[INITRD_ADDR_MAX..INITRD_ADDR_MAX + 4].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        k[KERNEL_ALIGNMENT..KERNEL_ALIGNMENT + 4].copy_from_slice(&0x20_0000u32.to_le_bytes());
        k[RELOCATABLE] = 1;
        k[XLOADFLAGS..XLOADFLAGS + 2].copy_from_slice(&0x7Fu16.to_le_bytes());
        k[CMDLINE_SIZE..CMDLINE_SIZE + 4].copy_from_slice(&0x7FFu32.to_le_bytes());
        k[PREF_ADDRESS..PREF_ADDRESS + 8].copy_from_slice(&0x100_0000u64.to_le_bytes());
        k[INIT_SIZE..INIT_SIZE + 4].copy_from_slice(&init_size.to_le_bytes());
        for (i, b) in k[3 * 512..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        k
    }

    /// A bundle with its parts packed one after the other (unaligned: the
    /// reader must not care).
    fn bundle_bytes(kernel: &[u8], initrd: &[u8], cmdline: &[u8], ram_mib: u32) -> Vec<u8> {
        use vmm_shared::bundle::{Part, HEADER_SIZE};
        let mut h = Header {
            ram_mib,
            ..Header::default()
        };
        let mut body = Vec::new();
        for (field, part) in [
            (&mut h.kernel, kernel),
            (&mut h.initrd, initrd),
            (&mut h.cmdline, cmdline),
        ] {
            *field = Part {
                offset: (HEADER_SIZE + body.len()) as u64,
                len: part.len() as u64,
            };
            body.extend_from_slice(part);
        }
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(&body);
        b
    }

    fn r32(b: &[u8], at: u64) -> u32 {
        le_u32(b, at as usize).unwrap()
    }

    #[test]
    fn bundle_round_trip_and_bounds() {
        let b = bundle_bytes(b"KERNEL", b"INITRD", b"console=ttyS0", 128);
        let p = Bundle::parse(&b).unwrap();
        assert_eq!(p.ram, 128 << 20);
        assert_eq!(
            (p.kernel, p.initrd, p.cmdline),
            (&b"KERNEL"[..], &b"INITRD"[..], &b"console=ttyS0"[..])
        );
        // Truncated: the cmdline runs past the end.
        assert_eq!(Bundle::parse(&b[..b.len() - 1]), Err(LinuxError::BadBundle));
        assert_eq!(Bundle::parse(&b[..40]), Err(LinuxError::BadBundle));
        let mut huge = b.clone();
        huge[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Bundle::parse(&huge), Err(LinuxError::BadBundle));
        assert!(!Bundle::is_bundle(b"\x7fELF"));
    }

    #[test]
    fn setup_header_checks() {
        let k = bzimage(0x020F, 4096, 0x10_0000);
        let h = SetupHeader::parse(&k).unwrap();
        assert_eq!(h.kernel_offset, 3 * 512);
        assert_eq!(h.load_addr, 0x100_0000);
        assert_eq!(h.header_end, 0x26C);
        assert_eq!(
            SetupHeader::parse(&bzimage(0x020B, 4096, 0)),
            Err(LinuxError::Unsupported { version: 0x020B })
        );
        let mut no64 = k.clone();
        no64[XLOADFLAGS] = 0;
        assert!(matches!(
            SetupHeader::parse(&no64),
            Err(LinuxError::Unsupported { .. })
        ));
        assert_eq!(SetupHeader::parse(&k[..0x300]), Err(LinuxError::NotBzImage));
        assert_eq!(SetupHeader::parse(b"junk"), Err(LinuxError::NotBzImage));
        let mut unaligned = k.clone();
        unaligned[PREF_ADDRESS..PREF_ADDRESS + 8].copy_from_slice(&0x100_1000u64.to_le_bytes());
        assert_eq!(SetupHeader::parse(&unaligned).unwrap().load_addr, 0x10_0000);
    }

    #[test]
    fn boot_params_and_layout() {
        let k = bzimage(0x020F, 8192, 0x40_0000);
        let initrd = vec![0xA5u8; 10_000];
        let b = bundle_bytes(&k, &initrd, b"console=ttyS0 quiet", 64);
        let p = Bundle::parse(&b).unwrap();
        let mut ram = vec![0xEEu8; 64 << 20];
        let s = prepare(&mut ram, &p).unwrap();
        assert_eq!(s.rip, 0x100_0200);
        assert_eq!(s.rsi, BOOT_PARAMS);
        assert_eq!((s.cs, s.ds, s.profile), (BOOT_CS, BOOT_DS, Profile::Linux));
        // The protected-mode kernel at 16 MiB.
        assert_eq!(&ram[0x100_0000..0x100_0000 + 8192], &k[3 * 512..]);
        let bp = &ram[BOOT_PARAMS as usize..BOOT_PARAMS as usize + 4096];
        assert_eq!(&bp[HEADER..HEADER + 4], HDR_MAGIC);
        assert_eq!(bp[TYPE_OF_LOADER], 0xFF);
        assert_eq!(r32(bp, CMD_LINE_PTR as u64), CMDLINE as u32);
        assert_eq!(
            &ram[CMDLINE as usize..CMDLINE as usize + 20],
            b"console=ttyS0 quiet\0"
        );
        // The initramfs: page-aligned at the top of RAM.
        let at = u64::from(r32(bp, RAMDISK_IMAGE as u64));
        assert_eq!(at % 4096, 0);
        assert!(at + 10_000 <= 64 << 20 && at + 10_000 + 4096 > 64 << 20);
        assert_eq!(r32(bp, RAMDISK_SIZE as u64), 10_000);
        assert_eq!(&ram[at as usize..at as usize + 10_000], &initrd[..]);
        // E820: three entries, RAM to the end.
        assert_eq!(bp[E820_ENTRIES], 3);
        let e = |i: usize, f: usize| le_u64(bp, E820_TABLE + i * 20 + f).unwrap();
        assert_eq!((e(0, 0), e(0, 8)), (0, LEGACY_START));
        assert_eq!((e(2, 0), e(2, 8)), (LEGACY_END, (64 << 20) - LEGACY_END));
        assert_eq!(r32(bp, (E820_TABLE + 20 + 16) as u64), E820_RESERVED);
        // Everything else was zeroed; the tables map RAM.
        assert_eq!(ram[0x9F000], 0);
        assert_eq!(ram[0x100_0000 + 8192], 0, "decompression room");
        assert!(
            ram[0x200_0000..].iter().all(|&b| b == 0 || b == 0xA5),
            "no stale bytes"
        );
        assert_eq!(le_u64(&ram, 0x3000).unwrap(), 0x83);
        assert_eq!(le_u64(&ram, 0x4010).unwrap(), GDT[2]);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let k = bzimage(0x020F, 4096, 0x300_0000);
        let p = |initrd: &[u8], ram: u32| {
            let b = bundle_bytes(&k, initrd, b"x", ram);
            let bundle = Bundle::parse(&b).unwrap();
            let mut mem = vec![0u8; (bundle.ram as usize).max(4096)];
            prepare(&mut mem, &bundle).err()
        };
        assert_eq!(p(&[], 64), None);
        assert!(matches!(
            p(&vec![0u8; 40 << 20], 64),
            Some(LinuxError::TooBig { .. })
        ));
        assert_eq!(p(&[], 0), Some(LinuxError::BadRamSize(4096)));
        let long = vec![b'a'; 0x800];
        let b = bundle_bytes(&k, &[], &long, 64);
        let mut mem = vec![0u8; 64 << 20];
        assert_eq!(
            prepare(&mut mem, &Bundle::parse(&b).unwrap()),
            Err(LinuxError::CmdlineTooLong(0x800))
        );
    }
}
