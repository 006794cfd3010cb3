//! Reference models shared by the fuzz targets of `vmmcall`
//! (`tests/fuzz.rs`, `tests/paging.rs`), written from docs/ABI.md and the
//! manuals, never from the code under test:
//!
//! - the guest-visible errno values of docs/ABI.md ("Errors"), spelled out
//!   as the 64-bit values a guest finds in RAX;
//! - 48-bit canonical addresses (Intel SDM Vol. 1 §3.3.7.1: bits 63:47
//!   equal), as a sign extension;
//! - the 4-level page walk (Intel SDM Vol. 3A §4.5 Tables 4-15 to 4-20,
//!   §4.6.1 access rights; AMD APM Vol. 2 §5.3, §5.6), written as a
//!   recursive descent over a table of level rules with its own masks;
//! - models of `read_linear` and `write_linear` on that walk, one 4 KiB
//!   linear page at a time,
//!   with docs/ABI.md's "check first, then write" rule.
//!
//! The only things taken from the crate are its data types (`PagingMode`
//! as a plain record of register values, `MemError` as the error
//! vocabulary); none of their methods is called here.

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use vmmcall::paging::PagingMode;
use vmmcall::MemError;

/// Bytes in a 4 KiB page.
pub const PAGE: u64 = 0x1000;

// docs/ABI.md "Errors": -errno, read as u64.
/// -1, `EPERM`.
pub const EPERM: u64 = 0xFFFF_FFFF_FFFF_FFFF;
/// -14, `EFAULT`.
pub const EFAULT: u64 = 0xFFFF_FFFF_FFFF_FFF2;
/// -28, `ENOSPC`.
pub const ENOSPC: u64 = 0xFFFF_FFFF_FFFF_FFE4;
/// -22, `EINVAL`.
pub const EINVAL: u64 = 0xFFFF_FFFF_FFFF_FFEA;
/// -34, `ERANGE`.
pub const ERANGE: u64 = 0xFFFF_FFFF_FFFF_FFDE;
/// -38, `ENOSYS`.
pub const ENOSYS: u64 = 0xFFFF_FFFF_FFFF_FFDA;
/// -71, `EPROTO`.
pub const EPROTO: u64 = 0xFFFF_FFFF_FFFF_FFB9;
/// -75, `EOVERFLOW`.
pub const EOVERFLOW: u64 = 0xFFFF_FFFF_FFFF_FFB5;
/// The lowest value that is an error: -4095.
pub const FIRST_ERROR: u64 = 0xFFFF_FFFF_FFFF_F001;

/// Whether `a` is canonical for 48-bit linear addresses: sign-extending
/// bit 47 into bits 63:48 gives `a` back.
pub fn canonical(a: u64) -> bool {
    (((a << 16) as i64) >> 16) as u64 == a
}

/// A mask of the bits `lo..=hi`, one bit at a time.
fn bits(lo: u32, hi: u32) -> u64 {
    (lo..=hi).fold(0, |m, b| m | (1u64 << b))
}

/// What a PS bit means at one level of the walk.
#[derive(Clone, Copy)]
enum Ps {
    /// PML4E: bit 7 is reserved (SDM Table 4-15).
    Reserved,
    /// PDPTE / PDE: PS = 1 maps a page; these low address bits are then
    /// reserved (bits 29:13, Table 4-16; bits 20:13, Table 4-18).
    MapsPage(u64),
    /// PTE: always maps a 4 KiB page; bit 7 is PAT.
    Leaf,
}

/// One level of the 4-level walk.
struct Level {
    /// The level's number in errors: 4 = PML4E ... 1 = PTE.
    number: u8,
    /// Lowest linear-address bit of this level's 9-bit index.
    index_lsb: u32,
    ps: Ps,
}

const LEVELS: [Level; 4] = [
    Level {
        number: 4,
        index_lsb: 39,
        ps: Ps::Reserved,
    },
    Level {
        number: 3,
        index_lsb: 30,
        ps: Ps::MapsPage(0x3FFF_E000),
    },
    Level {
        number: 2,
        index_lsb: 21,
        ps: Ps::MapsPage(0x001F_E000),
    },
    Level {
        number: 1,
        index_lsb: 12,
        ps: Ps::Leaf,
    },
];

/// A successful walk: the guest-physical address and the guest-physical
/// pages of the paging structures it read (PML4 first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked {
    pub gpa: u64,
    pub tables: Vec<u64>,
}

struct Ctx<'r> {
    ram: &'r [u8],
    la: u64,
    write: bool,
    user: bool,
    wp: bool,
    /// Bits MAXPHYADDR-1:12 of an entry: the next table or the page.
    address: u64,
    /// Bits that must be 0 in every entry: 51:MAXPHYADDR, and 63 without
    /// EFER.NXE.
    must_be_zero: u64,
}

impl Ctx<'_> {
    fn entry(&self, gpa: u64) -> Result<u64, MemError> {
        let i = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
        let b = self.ram.get(i..i + 8).ok_or(MemError::OutsideRam { gpa })?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |v, &byte| (v << 8) | u64::from(byte)))
    }

    /// The walk from the table at `table` for `LEVELS[depth..]`, with the
    /// U/S and R/W rights of the entries above.
    fn descend(
        &self,
        depth: usize,
        table: u64,
        user_ok: bool,
        write_ok: bool,
        tables: &mut Vec<u64>,
    ) -> Result<u64, MemError> {
        let level = &LEVELS[depth];
        tables.push(table);
        let index = (self.la >> level.index_lsb) & 0x1FF;
        let e = self.entry(table + index * 8)?;
        let (addr, n) = (self.la, level.number);
        if e & 1 == 0 {
            return Err(MemError::NotPresent { addr, level: n });
        }
        let ps = e & 0x80 != 0;
        let extra = match (level.ps, ps) {
            (Ps::Reserved, true) => 0x80,
            (Ps::MapsPage(low), true) => low,
            _ => 0,
        };
        if e & (self.must_be_zero | extra) != 0 {
            return Err(MemError::Reserved { addr, level: n });
        }
        let user_ok = user_ok && e & 0b100 != 0;
        let write_ok = write_ok && e & 0b10 != 0;
        let page_shift = match (level.ps, ps) {
            (Ps::Leaf, _) => Some(12),
            (Ps::MapsPage(_), true) => Some(level.index_lsb),
            _ => None,
        };
        let Some(shift) = page_shift else {
            return self.descend(depth + 1, e & self.address, user_ok, write_ok, tables);
        };
        // SDM §4.6.1: user accesses need U/S everywhere; writes need R/W
        // everywhere, for supervisor writes only with CR0.WP = 1.
        if self.user && !user_ok {
            return Err(MemError::Supervisor { addr });
        }
        if self.write && !write_ok && (self.user || self.wp) {
            return Err(MemError::ReadOnly { addr });
        }
        let offset = (1u64 << shift) - 1;
        Ok((e & self.address & !offset) | (self.la & offset))
    }
}

/// The walk of `la` for a read or write by a user (CPL 3) or supervisor
/// caller, under `mode`, in the guest RAM `ram` (at guest-physical 0).
pub fn walk(
    mode: &PagingMode,
    ram: &[u8],
    la: u64,
    write: bool,
    user: bool,
) -> Result<Walked, MemError> {
    // SDM Vol. 3A Table 4-1: CR0.PG (bit 31), CR4.PAE (bit 5), EFER.LMA
    // (bit 10), CR4.LA57 (bit 12).
    if mode.cr0 >> 31 & 1 == 0 {
        return Ok(Walked {
            gpa: la,
            tables: Vec::new(),
        });
    }
    let four_level = mode.cr4 >> 5 & 1 == 1 && mode.efer >> 10 & 1 == 1 && mode.cr4 >> 12 & 1 == 0;
    if !four_level {
        return Err(MemError::UnsupportedMode);
    }
    if !canonical(la) {
        return Err(MemError::NonCanonical { addr: la });
    }
    // MAXPHYADDR, clamped to 12..=52 as `PagingMode` documents.
    let m = u32::from(mode.maxphyaddr).clamp(12, 52);
    let nxe = mode.efer >> 11 & 1 == 1;
    let ctx = Ctx {
        ram,
        la,
        write,
        user,
        wp: mode.cr0 >> 16 & 1 == 1,
        address: if m > 12 { bits(12, m - 1) } else { 0 },
        must_be_zero: if m < 52 { bits(m, 51) } else { 0 } | if nxe { 0 } else { 1 << 63 },
    };
    let mut tables = Vec::new();
    let gpa = ctx.descend(0, mode.cr3 & ctx.address, true, true, &mut tables)?;
    Ok(Walked { gpa, tables })
}

/// The runs of `[la, la + len)` within one 4 KiB linear page each (every
/// byte of such a run walks the same entries): (offset, length).
fn runs(la: u64, len: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < len {
        let a = la + off as u64;
        let room = (PAGE - a % PAGE) as usize;
        let n = room.min(len - off);
        out.push((off, n));
        off += n;
    }
    out
}

/// Whether the `n` bytes at guest-physical `gpa` are all guest RAM.
fn in_ram(ram: &[u8], gpa: u64, n: usize) -> bool {
    gpa.checked_add(n as u64)
        .is_some_and(|end| end <= ram.len() as u64)
}

/// `read_linear` of `len` bytes at `la`: the bytes, or the error of the
/// first run that cannot be read (for a run outside RAM: its first byte's
/// guest-physical address). A range that wraps past 2^64 fails first, as a
/// whole.
pub fn read(
    mode: &PagingMode,
    ram: &[u8],
    la: u64,
    len: usize,
    user: bool,
) -> Result<Vec<u8>, MemError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if la.checked_add(len as u64 - 1).is_none() {
        return Err(MemError::RangeOverflow {
            addr: la,
            len: len as u64,
        });
    }
    let mut out = Vec::with_capacity(len);
    for (off, n) in runs(la, len) {
        let gpa = walk(mode, ram, la + off as u64, false, user)?.gpa;
        if !in_ram(ram, gpa, n) {
            return Err(MemError::OutsideRam { gpa });
        }
        out.extend_from_slice(&ram[gpa as usize..gpa as usize + n]);
    }
    Ok(out)
}

/// Pieces a range splits into past which a write no longer keeps its
/// translations (docs/ABI.md; `vmmcall::paging::WRITE_KEPT_PIECES`).
pub const KEPT_PIECES: usize = 64;

/// `write_linear` of `data` at `la`: the guest RAM afterwards and the
/// result. Check first, then write (docs/ABI.md): the first run that
/// cannot be written (not translatable for a write, or outside RAM) fails
/// the whole call and nothing changes. Otherwise every byte goes to the
/// address its walk gave before the write. A range of more than
/// [`KEPT_PIECES`] linear pages whose data lands on a page holding one of
/// its own walks' paging structures is refused, naming the first such
/// run, and nothing changes.
pub fn write(
    mode: &PagingMode,
    ram: &[u8],
    la: u64,
    data: &[u8],
    user: bool,
) -> (Vec<u8>, Result<(), MemError>) {
    let len = data.len();
    if len == 0 {
        return (ram.to_vec(), Ok(()));
    }
    if la.checked_add(len as u64 - 1).is_none() {
        let e = MemError::RangeOverflow {
            addr: la,
            len: len as u64,
        };
        return (ram.to_vec(), Err(e));
    }
    let mut checked = Vec::new();
    let mut tables = BTreeSet::new();
    for (off, n) in runs(la, len) {
        let a = la + off as u64;
        let w = match walk(mode, ram, a, true, user) {
            Ok(w) => w,
            Err(e) => return (ram.to_vec(), Err(e)),
        };
        if !in_ram(ram, w.gpa, n) {
            return (ram.to_vec(), Err(MemError::OutsideRam { gpa: w.gpa }));
        }
        tables.extend(w.tables);
        checked.push((a, w.gpa, off, n));
    }
    if checked.len() > KEPT_PIECES {
        if let Some(&(a, ..)) = checked
            .iter()
            .find(|(_, gpa, ..)| tables.contains(&(gpa & !(PAGE - 1))))
        {
            return (ram.to_vec(), Err(MemError::OverwritesOwnTables { addr: a }));
        }
    }
    let mut out = ram.to_vec();
    for (_, gpa, off, n) in checked {
        out[gpa as usize..gpa as usize + n].copy_from_slice(&data[off..off + n]);
    }
    (out, Ok(()))
}

#[test]
fn the_models_own_constants() {
    // The errno values are -errno in two's complement.
    for (v, errno) in [
        (EPERM, 1),
        (EFAULT, 14),
        (EINVAL, 22),
        (ENOSPC, 28),
        (ERANGE, 34),
        (ENOSYS, 38),
        (EPROTO, 71),
        (EOVERFLOW, 75),
        (FIRST_ERROR, 4095),
    ] {
        assert_eq!(v as i64, -errno);
    }
    assert_eq!(bits(13, 29), 0x3FFF_E000);
    assert_eq!(bits(13, 20), 0x001F_E000);
    for (a, c) in [
        (0, true),
        (0x0000_7FFF_FFFF_FFFF, true),
        (0x0000_8000_0000_0000, false),
        (0xFFFF_7FFF_FFFF_FFFF, false),
        (0xFFFF_8000_0000_0000, true),
        (u64::MAX, true),
        (1 << 63, false),
    ] {
        assert_eq!(canonical(a), c, "{a:#x}");
    }
}
