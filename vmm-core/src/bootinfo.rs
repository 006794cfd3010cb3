//! What the boot loader tells us: usable RAM and the guest module.
//!
//! Two protocols reach `vmm-core`:
//! - **PVH** (QEMU `-kernel`): EBX points at `hvm_start_info` (Xen
//!   `arch-x86/hvm/start_info.h`): magic `0x336ec578`, module list
//!   (`hvm_modlist_entry`, 32 bytes each), the command line
//!   (`cmdline_paddr`, QEMU's `-append`) and, from version 1, an E820-style
//!   memory map (`hvm_memmap_table_entry`, 24 bytes each).
//! - **Multiboot2** (GRUB): EBX points at the boot information (Multiboot2
//!   specification §3.6): 8-byte aligned tags; we read type 1 (boot command
//!   line: what follows the file name on GRUB's `multiboot2` line), type 3
//!   (module) and type 6 (memory map).
//!
//! From the command line only one word is used: `verdict=SECRET`
//! ([`VerdictSecret`]). `cargo xtask` puts a fresh random secret there for
//! each run, and the VMM prints it in its verdict line (`vmm: guest exited
//! with status N [verdict SECRET]`), so that a guest, which shares the
//! console but can never read VMM memory or the boot information, cannot
//! print a verdict line xtask would believe.
//!
//! Parsing works on a [`PhysReader`], so the same code runs on real
//! physical memory and on byte arrays in host tests. Malformed input gives
//! a [`BootInfoError`], never a panic.

use core::fmt;

/// PVH `hvm_start_info.magic`.
pub const PVH_MAGIC: u32 = 0x336e_c578;
/// The value GRUB leaves in EAX for a Multiboot2 kernel.
pub const MULTIBOOT2_BOOT_MAGIC: u32 = 0x36d7_6289;

/// Most memory-map entries kept; the rest are ignored (and logged).
pub const MAX_REGIONS: usize = 32;

/// Most bytes of the boot command line read (the rest is ignored).
pub const MAX_CMDLINE: usize = 256;

/// Longest verdict secret accepted, in characters.
pub const MAX_SECRET: usize = 32;

/// The word of the command line that carries the secret (xtask writes it).
pub const VERDICT_WORD: &[u8] = vmm_shared::markers::VERDICT_WORD.as_bytes();

/// The run's verdict secret: 1 to [`MAX_SECRET`] ASCII letters and digits
/// from `verdict=SECRET` on the boot command line, kept in VMM memory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerdictSecret {
    bytes: [u8; MAX_SECRET],
    len: usize,
}

impl VerdictSecret {
    /// The secret in `cmdline`: the first word `verdict=SECRET` (words are
    /// separated by spaces; a NUL ends the line). `None` if there is no
    /// such word, or its value is empty, longer than [`MAX_SECRET`] or not
    /// all ASCII letters and digits.
    pub fn from_cmdline(cmdline: &[u8]) -> Option<VerdictSecret> {
        let line = cmdline.split(|&b| b == 0).next().unwrap_or(&[]);
        let value = line
            .split(|&b| b == b' ' || b == b'\t')
            .find_map(|word| word.strip_prefix(VERDICT_WORD))?;
        if value.is_empty()
            || value.len() > MAX_SECRET
            || !value.iter().all(u8::is_ascii_alphanumeric)
        {
            return None;
        }
        let mut bytes = [0u8; MAX_SECRET];
        bytes.get_mut(..value.len())?.copy_from_slice(value);
        Some(VerdictSecret {
            bytes,
            len: value.len(),
        })
    }

    /// The secret's text.
    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics are ever stored.
        self.bytes
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Debug for VerdictSecret {
    /// Never the secret itself: logs may be shown where the guest can see
    /// them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerdictSecret({} characters)", self.len)
    }
}

/// Read a NUL-terminated command line at `addr`, at most [`MAX_CMDLINE`]
/// bytes (an unreadable byte ends it too).
fn read_cmdline(mem: &dyn PhysReader, addr: u64, limit: usize) -> Option<VerdictSecret> {
    let mut buf = [0u8; MAX_CMDLINE];
    let limit = limit.min(MAX_CMDLINE);
    for (i, slot) in buf.iter_mut().enumerate().take(limit) {
        let mut b = [0u8];
        if mem.read(addr.checked_add(i as u64)?, &mut b).is_none() || b[0] == 0 {
            break;
        }
        *slot = b[0];
    }
    VerdictSecret::from_cmdline(&buf)
}

/// Reads physical memory at the boot loader's addresses.
pub trait PhysReader {
    /// Copy `buf.len()` bytes at physical `addr`, or `None` if out of range.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Option<()>;

    /// A little-endian u16 at `addr`.
    fn u16(&self, addr: u64) -> Option<u16> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Some(u16::from_le_bytes(b))
    }

    /// A little-endian u32 at `addr`.
    fn u32(&self, addr: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Some(u32::from_le_bytes(b))
    }

    /// A little-endian u64 at `addr`.
    fn u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Some(u64::from_le_bytes(b))
    }
}

/// A range of physical memory, `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Region {
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// Which protocol booted us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// QEMU's PVH entry.
    Pvh,
    /// GRUB's Multiboot2.
    Multiboot2,
}

/// The facts `vmm-core` needs from the boot loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// How we were booted.
    pub protocol: Protocol,
    /// Usable RAM (E820 type 1), up to [`MAX_REGIONS`] entries.
    pub ram: [Region; MAX_REGIONS],
    /// How many entries of `ram` are valid.
    pub ram_count: usize,
    /// The first boot module: the guest image.
    pub module: Option<Region>,
    /// `verdict=SECRET` from the boot command line, if given.
    pub verdict: Option<VerdictSecret>,
}

impl BootInfo {
    /// The valid usable-RAM regions.
    pub fn ram(&self) -> &[Region] {
        self.ram.get(..self.ram_count).unwrap_or(&[])
    }

    fn new(protocol: Protocol) -> Self {
        BootInfo {
            protocol,
            ram: [Region::default(); MAX_REGIONS],
            ram_count: 0,
            module: None,
            verdict: None,
        }
    }

    fn push_ram(&mut self, r: Region) {
        if r.len == 0 {
            return;
        }
        if let Some(slot) = self.ram.get_mut(self.ram_count) {
            *slot = r;
            self.ram_count = self.ram_count.saturating_add(1);
        }
    }
}

/// Why the boot information could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// The PVH start-info magic is wrong.
    BadPvhMagic(u32),
    /// A structure lies outside readable memory.
    Unreadable(u64),
    /// The Multiboot2 tag list is malformed (size too small or too large).
    BadTag(u64),
    /// No memory map was given.
    NoMemoryMap,
    /// The entry code did not recognise the boot protocol.
    UnknownProtocol,
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootInfoError::BadPvhMagic(m) => {
                write!(f, "PVH start info magic {m:#x}, expected {PVH_MAGIC:#x}")
            }
            BootInfoError::Unreadable(a) => write!(f, "boot information at {a:#x} is unreadable"),
            BootInfoError::BadTag(a) => write!(f, "malformed multiboot2 tag at {a:#x}"),
            BootInfoError::NoMemoryMap => write!(f, "the boot loader gave no memory map"),
            BootInfoError::UnknownProtocol => write!(f, "unknown boot protocol"),
        }
    }
}

const E820_RAM: u32 = 1;

/// Parse PVH `hvm_start_info` at `addr`.
pub fn parse_pvh(mem: &dyn PhysReader, addr: u64) -> Result<BootInfo, BootInfoError> {
    let at = |off: u64| addr.checked_add(off).ok_or(BootInfoError::Unreadable(addr));
    let magic = mem.u32(addr).ok_or(BootInfoError::Unreadable(addr))?;
    if magic != PVH_MAGIC {
        return Err(BootInfoError::BadPvhMagic(magic));
    }
    let mut info = BootInfo::new(Protocol::Pvh);
    let version = mem.u32(at(4)?).ok_or(BootInfoError::Unreadable(addr))?;
    let nr_modules = mem.u32(at(12)?).ok_or(BootInfoError::Unreadable(addr))?;
    let modlist = mem.u64(at(16)?).ok_or(BootInfoError::Unreadable(addr))?;
    if nr_modules > 0 {
        let paddr = mem.u64(modlist).ok_or(BootInfoError::Unreadable(modlist))?;
        let size = mem
            .u64(modlist.saturating_add(8))
            .ok_or(BootInfoError::Unreadable(modlist))?;
        info.module = Some(Region {
            start: paddr,
            len: size,
        });
    }
    let cmdline = mem.u64(at(24)?).ok_or(BootInfoError::Unreadable(addr))?;
    if cmdline != 0 {
        info.verdict = read_cmdline(mem, cmdline, MAX_CMDLINE);
    }
    if version < 1 {
        return Err(BootInfoError::NoMemoryMap);
    }
    let memmap = mem.u64(at(40)?).ok_or(BootInfoError::Unreadable(addr))?;
    let entries = mem.u32(at(48)?).ok_or(BootInfoError::Unreadable(addr))?;
    if entries == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    for i in 0..u64::from(entries) {
        let e = memmap
            .checked_add(i.saturating_mul(24))
            .ok_or(BootInfoError::Unreadable(memmap))?;
        let start = mem.u64(e).ok_or(BootInfoError::Unreadable(e))?;
        let len = mem
            .u64(e.saturating_add(8))
            .ok_or(BootInfoError::Unreadable(e))?;
        let kind = mem
            .u32(e.saturating_add(16))
            .ok_or(BootInfoError::Unreadable(e))?;
        if kind == E820_RAM {
            info.push_ram(Region { start, len });
        }
    }
    Ok(info)
}

/// Parse Multiboot2 boot information at `addr`.
pub fn parse_multiboot2(mem: &dyn PhysReader, addr: u64) -> Result<BootInfo, BootInfoError> {
    let total = mem.u32(addr).ok_or(BootInfoError::Unreadable(addr))?;
    let end = addr.saturating_add(u64::from(total));
    let mut info = BootInfo::new(Protocol::Multiboot2);
    let mut have_map = false;
    let mut tag = addr.saturating_add(8);
    while tag.saturating_add(8) <= end {
        let kind = mem.u32(tag).ok_or(BootInfoError::Unreadable(tag))?;
        let size = mem
            .u32(tag.saturating_add(4))
            .ok_or(BootInfoError::Unreadable(tag))?;
        if size < 8 || tag.saturating_add(u64::from(size)) > end {
            return Err(BootInfoError::BadTag(tag));
        }
        match kind {
            0 => break,
            1 if info.verdict.is_none() => {
                // The string follows the 8-byte header, NUL included.
                let len = usize::try_from(size.saturating_sub(8)).unwrap_or(0);
                info.verdict = read_cmdline(mem, tag.saturating_add(8), len);
            }
            3 if info.module.is_none() => {
                let start = mem
                    .u32(tag.saturating_add(8))
                    .ok_or(BootInfoError::Unreadable(tag))?;
                let stop = mem
                    .u32(tag.saturating_add(12))
                    .ok_or(BootInfoError::Unreadable(tag))?;
                info.module = Some(Region {
                    start: u64::from(start),
                    len: u64::from(stop.saturating_sub(start)),
                });
            }
            6 => {
                have_map = true;
                let entry_size = mem
                    .u32(tag.saturating_add(8))
                    .ok_or(BootInfoError::Unreadable(tag))?;
                if entry_size < 24 {
                    return Err(BootInfoError::BadTag(tag));
                }
                let tag_end = tag.saturating_add(u64::from(size));
                let mut e = tag.saturating_add(16);
                while e.saturating_add(24) <= tag_end {
                    let start = mem.u64(e).ok_or(BootInfoError::Unreadable(e))?;
                    let len = mem
                        .u64(e.saturating_add(8))
                        .ok_or(BootInfoError::Unreadable(e))?;
                    let kind = mem
                        .u32(e.saturating_add(16))
                        .ok_or(BootInfoError::Unreadable(e))?;
                    if kind == E820_RAM {
                        info.push_ram(Region { start, len });
                    }
                    e = e.saturating_add(u64::from(entry_size));
                }
            }
            _ => {}
        }
        // Tags are padded to 8 bytes.
        tag = tag.saturating_add((u64::from(size).saturating_add(7)) & !7);
    }
    if !have_map {
        return Err(BootInfoError::NoMemoryMap);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    impl VerdictSecret {
        fn len(&self) -> usize {
            self.len
        }
    }

    struct Bytes(Vec<u8>);
    impl PhysReader for Bytes {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
            let a = usize::try_from(addr).ok()?;
            buf.copy_from_slice(self.0.get(a..a.checked_add(buf.len())?)?);
            Some(())
        }
    }

    fn put(v: &mut Vec<u8>, at: usize, bytes: &[u8]) {
        if v.len() < at + bytes.len() {
            v.resize(at + bytes.len(), 0);
        }
        v[at..at + bytes.len()].copy_from_slice(bytes);
    }

    #[test]
    fn pvh_with_module_and_map() {
        let mut m = Vec::new();
        put(&mut m, 0x100, &PVH_MAGIC.to_le_bytes());
        put(&mut m, 0x104, &1u32.to_le_bytes());
        put(&mut m, 0x10c, &1u32.to_le_bytes());
        put(&mut m, 0x110, &0x200u64.to_le_bytes());
        put(&mut m, 0x128, &0x300u64.to_le_bytes());
        put(&mut m, 0x130, &2u32.to_le_bytes());
        put(&mut m, 0x200, &0x0700_0000u64.to_le_bytes());
        put(&mut m, 0x208, &0x1234u64.to_le_bytes());
        // RAM, then reserved.
        put(&mut m, 0x300, &0x10_0000u64.to_le_bytes());
        put(&mut m, 0x308, &0x0ff0_0000u64.to_le_bytes());
        put(&mut m, 0x310, &1u32.to_le_bytes());
        put(&mut m, 0x318, &0xfeff_c000u64.to_le_bytes());
        put(&mut m, 0x320, &0x4000u64.to_le_bytes());
        put(&mut m, 0x328, &2u32.to_le_bytes());
        let info = parse_pvh(&Bytes(m), 0x100).unwrap();
        assert_eq!(info.protocol, Protocol::Pvh);
        assert_eq!(
            info.module,
            Some(Region {
                start: 0x0700_0000,
                len: 0x1234
            })
        );
        assert_eq!(
            info.ram(),
            &[Region {
                start: 0x10_0000,
                len: 0x0ff0_0000
            }]
        );
    }

    #[test]
    fn pvh_bad_magic_and_truncation() {
        let mut m = Vec::new();
        put(&mut m, 0, &0xdead_beefu32.to_le_bytes());
        assert_eq!(
            parse_pvh(&Bytes(m.clone()), 0),
            Err(BootInfoError::BadPvhMagic(0xdead_beef))
        );
        put(&mut m, 0, &PVH_MAGIC.to_le_bytes());
        assert!(matches!(
            parse_pvh(&Bytes(m), 0),
            Err(BootInfoError::Unreadable(_))
        ));
        assert!(parse_pvh(&Bytes(Vec::new()), u64::MAX - 2).is_err());
    }

    #[test]
    fn multiboot2_module_and_map() {
        let mut m = Vec::new();
        // module tag at 8: type 3, size 17 ("g\0" string), padded to 24.
        put(&mut m, 8, &3u32.to_le_bytes());
        put(&mut m, 12, &18u32.to_le_bytes());
        put(&mut m, 16, &0x0020_0000u32.to_le_bytes());
        put(&mut m, 20, &0x0020_4000u32.to_le_bytes());
        put(&mut m, 24, b"g\0");
        // mmap tag at 32: 16-byte header + 2 entries of 24.
        put(&mut m, 32, &6u32.to_le_bytes());
        put(&mut m, 36, &64u32.to_le_bytes());
        put(&mut m, 40, &24u32.to_le_bytes());
        put(&mut m, 48, &0u64.to_le_bytes());
        put(&mut m, 56, &0x9fc00u64.to_le_bytes());
        put(&mut m, 64, &1u32.to_le_bytes());
        put(&mut m, 72, &0x10_0000u64.to_le_bytes());
        put(&mut m, 80, &0x0700_0000u64.to_le_bytes());
        put(&mut m, 88, &1u32.to_le_bytes());
        // end tag at 96
        put(&mut m, 96, &0u32.to_le_bytes());
        put(&mut m, 100, &8u32.to_le_bytes());
        put(&mut m, 0, &104u32.to_le_bytes());
        let info = parse_multiboot2(&Bytes(m), 0).unwrap();
        assert_eq!(info.protocol, Protocol::Multiboot2);
        assert_eq!(
            info.module,
            Some(Region {
                start: 0x20_0000,
                len: 0x4000
            })
        );
        assert_eq!(
            info.ram(),
            &[
                Region {
                    start: 0,
                    len: 0x9fc00
                },
                Region {
                    start: 0x10_0000,
                    len: 0x0700_0000
                }
            ]
        );
    }

    #[test]
    fn verdict_secret_from_the_command_line() {
        let s = |t: &[u8]| {
            VerdictSecret::from_cmdline(t).map(|v| std::string::String::from(v.as_str()))
        };
        assert_eq!(s(b"verdict=abc123").as_deref(), Some("abc123"));
        assert_eq!(s(b"/boot/vmm quiet verdict=Z9 x=1").as_deref(), Some("Z9"));
        assert_eq!(s(b"verdict=first verdict=second").as_deref(), Some("first"));
        assert_eq!(s(b"verdict=abc\0verdict=zzz").as_deref(), Some("abc"));
        let longest = [b'a'; MAX_SECRET];
        let mut line = std::vec::Vec::from(VERDICT_WORD);
        line.extend_from_slice(&longest);
        assert_eq!(s(&line).map(|v| v.len()), Some(MAX_SECRET));
        line.push(b'a');
        assert_eq!(s(&line), None, "too long");
        for bad in [
            &b""[..],
            b"verdict=",
            b"verdict=a-b",
            b"verdict=\xff",
            b"xverdict=abc",
            b"verdict",
            b"\0verdict=abc",
        ] {
            assert_eq!(s(bad), None, "{bad:?}");
        }
        let v = VerdictSecret::from_cmdline(b"verdict=hidden").unwrap();
        assert_eq!(std::format!("{v:?}"), "VerdictSecret(6 characters)");
    }

    #[test]
    fn pvh_command_line() {
        let mut m = Vec::new();
        put(&mut m, 0x100, &PVH_MAGIC.to_le_bytes());
        put(&mut m, 0x104, &1u32.to_le_bytes());
        put(&mut m, 0x118, &0x400u64.to_le_bytes());
        put(&mut m, 0x128, &0x300u64.to_le_bytes());
        put(&mut m, 0x130, &1u32.to_le_bytes());
        put(&mut m, 0x300, &0x10_0000u64.to_le_bytes());
        put(&mut m, 0x308, &0x10_0000u64.to_le_bytes());
        put(&mut m, 0x310, &1u32.to_le_bytes());
        put(&mut m, 0x400, b"verdict=f00d\0");
        let info = parse_pvh(&Bytes(m.clone()), 0x100).unwrap();
        assert_eq!(
            info.verdict
                .map(|v| std::string::String::from(v.as_str()))
                .as_deref(),
            Some("f00d")
        );
        // A command line that runs off the end of memory, unterminated:
        // read up to there.
        let mut short = m.clone();
        short.truncate(0x400 + 12);
        assert_eq!(
            parse_pvh(&Bytes(short), 0x100)
                .unwrap()
                .verdict
                .map(|v| v.len()),
            Some(4)
        );
        // No command line (0), or one that is unreadable.
        put(&mut m, 0x118, &0u64.to_le_bytes());
        assert_eq!(parse_pvh(&Bytes(m.clone()), 0x100).unwrap().verdict, None);
        put(&mut m, 0x118, &u64::MAX.to_le_bytes());
        assert_eq!(parse_pvh(&Bytes(m), 0x100).unwrap().verdict, None);
    }

    #[test]
    fn multiboot2_command_line() {
        let mut m = Vec::new();
        // Command-line tag at 8: type 1, size 8 + 19 ("x verdict=s3cr3t\0" is
        // 17 bytes, then 2 more that must not be read), padded to 32.
        put(&mut m, 8, &1u32.to_le_bytes());
        put(&mut m, 12, &(8u32 + 17).to_le_bytes());
        put(&mut m, 16, b"x verdict=s3cr3t\0XX");
        // mmap tag at 40.
        put(&mut m, 40, &6u32.to_le_bytes());
        put(&mut m, 44, &40u32.to_le_bytes());
        put(&mut m, 48, &24u32.to_le_bytes());
        put(&mut m, 56, &0x10_0000u64.to_le_bytes());
        put(&mut m, 64, &0x10_0000u64.to_le_bytes());
        put(&mut m, 72, &1u32.to_le_bytes());
        put(&mut m, 80, &0u32.to_le_bytes());
        put(&mut m, 84, &8u32.to_le_bytes());
        put(&mut m, 0, &88u32.to_le_bytes());
        let info = parse_multiboot2(&Bytes(m.clone()), 0).unwrap();
        assert_eq!(
            info.verdict
                .map(|v| std::string::String::from(v.as_str()))
                .as_deref(),
            Some("s3cr3t")
        );
        // The tag's size bounds the string even without a NUL.
        put(&mut m, 16, b"verdict=abcdEFGHIJKLMNOP");
        let info = parse_multiboot2(&Bytes(m), 0).unwrap();
        assert_eq!(
            info.verdict
                .map(|v| std::string::String::from(v.as_str()))
                .as_deref(),
            Some("abcdEFGHI")
        );
    }

    #[test]
    fn multiboot2_malformed_tags() {
        let mut m = Vec::new();
        put(&mut m, 0, &32u32.to_le_bytes());
        put(&mut m, 8, &6u32.to_le_bytes());
        put(&mut m, 12, &4u32.to_le_bytes()); // size < 8
        put(&mut m, 16, &[0; 16]);
        assert_eq!(
            parse_multiboot2(&Bytes(m.clone()), 0),
            Err(BootInfoError::BadTag(8))
        );
        put(&mut m, 12, &4096u32.to_le_bytes()); // past the end
        assert_eq!(
            parse_multiboot2(&Bytes(m.clone()), 0),
            Err(BootInfoError::BadTag(8))
        );
        put(&mut m, 8, &0u32.to_le_bytes());
        put(&mut m, 12, &8u32.to_le_bytes());
        assert_eq!(
            parse_multiboot2(&Bytes(m), 0),
            Err(BootInfoError::NoMemoryMap)
        );
    }
}
