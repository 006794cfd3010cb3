//! Host tests of the guest page-table walker (`vmmcall::paging`): a fake
//! guest RAM of 4 MiB at guest-physical 0 and a small page-table builder.

mod model;

use std::cell::RefCell;

use proptest::prelude::*;
use vmmcall::paging::{
    pieces, read_linear, translate, write_linear, Access, GuestPhysMemory, PagingKind, PagingMode,
    Piece, CR0_PG, CR0_WP, CR4_LA57, CR4_PAE, EFER_LMA, EFER_NXE,
};
use vmmcall::MemError;

const P: u64 = 1;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PS: u64 = 1 << 7;
const XD: u64 = 1 << 63;
const ALL: u64 = P | RW | US;

const RAM_SIZE: usize = 4 << 20;
/// First guest-physical page handed out for paging structures.
const TABLES: u64 = 0x1000;
/// 4 KiB data pages live here.
const DATA: u64 = 0x10_0000;
/// The 2 MiB data page.
const DATA_2M: u64 = 0x20_0000;

/// A user-half linear address for 4 KiB mappings.
const LA: u64 = 0x0000_1234_5678_9000;
/// A kernel-half linear address.
const KLA: u64 = 0xffff_8000_0010_0000;
/// 2 MiB-aligned linear address.
const LA_2M: u64 = 0x0000_0040_0020_0000;
/// 1 GiB-aligned linear address.
const LA_1G: u64 = 0x0000_0080_0000_0000;

/// Every call the walker made to guest-physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read(u64, usize),
    Write(u64, usize),
}

/// Fake guest RAM: `bytes.len()` bytes at guest-physical 0, anything above
/// is outside RAM. Logs every access.
struct Ram {
    bytes: Vec<u8>,
    log: RefCell<Vec<Op>>,
}

impl Ram {
    fn new(size: usize) -> Self {
        Ram {
            bytes: vec![0; size],
            log: RefCell::new(Vec::new()),
        }
    }

    fn range(&self, gpa: u64, len: usize) -> Result<std::ops::Range<usize>, MemError> {
        let start = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
        let end = start.checked_add(len).ok_or(MemError::OutsideRam { gpa })?;
        if end > self.bytes.len() {
            return Err(MemError::OutsideRam { gpa });
        }
        Ok(start..end)
    }

    fn u64_at(&self, gpa: u64) -> u64 {
        let r = self.range(gpa, 8).unwrap();
        u64::from_le_bytes(self.bytes[r].try_into().unwrap())
    }

    fn set_u64(&mut self, gpa: u64, v: u64) {
        let r = self.range(gpa, 8).unwrap();
        self.bytes[r].copy_from_slice(&v.to_le_bytes());
    }

    fn poke(&mut self, gpa: u64, data: &[u8]) {
        let r = self.range(gpa, data.len()).unwrap();
        self.bytes[r].copy_from_slice(data);
    }

    fn peek(&self, gpa: u64, len: usize) -> Vec<u8> {
        self.bytes[self.range(gpa, len).unwrap()].to_vec()
    }

    fn writes(&self) -> Vec<Op> {
        self.log
            .borrow()
            .iter()
            .copied()
            .filter(|op| matches!(op, Op::Write(..)))
            .collect()
    }
}

impl GuestPhysMemory for Ram {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.log.borrow_mut().push(Op::Read(gpa, buf.len()));
        let r = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.log.borrow_mut().push(Op::Write(gpa, data.len()));
        let r = self.range(gpa, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }
}

/// A guest with 4-level page tables built in its RAM.
struct Guest {
    ram: Ram,
    cr3: u64,
    next_table: u64,
    wp: bool,
    nxe: bool,
}

fn index(la: u64, level: u8) -> u64 {
    (la >> (12 + 9 * (u32::from(level) - 1))) & 0x1ff
}

impl Guest {
    fn new() -> Self {
        Guest::with_ram(RAM_SIZE)
    }

    fn with_ram(size: usize) -> Self {
        let mut g = Guest {
            ram: Ram::new(size),
            cr3: 0,
            next_table: TABLES,
            wp: true,
            nxe: true,
        };
        g.cr3 = g.alloc_table();
        g
    }

    fn alloc_table(&mut self) -> u64 {
        let t = self.next_table;
        assert!(t < DATA, "test page-table area exhausted");
        self.next_table += 0x1000;
        t
    }

    fn mode(&self) -> PagingMode {
        PagingMode::four_level(self.cr3, self.wp, self.nxe)
    }

    /// Guest-physical address of the level-`level` entry for `la`, creating
    /// missing tables (entries P|RW|US) on the way.
    fn entry(&mut self, la: u64, level: u8) -> u64 {
        let mut table = self.cr3;
        for l in (level + 1..=4).rev() {
            let at = table + index(la, l) * 8;
            let e = self.ram.u64_at(at);
            if e & P == 0 {
                let t = self.alloc_table();
                self.ram.set_u64(at, t | ALL);
                table = t;
            } else {
                assert_eq!(
                    e & PS,
                    0,
                    "test builder cannot descend through a large page"
                );
                table = e & 0x000f_ffff_ffff_f000;
            }
        }
        table + index(la, level) * 8
    }

    fn map_4k(&mut self, la: u64, gpa: u64) -> &mut Self {
        let e = self.entry(la, 1);
        self.ram.set_u64(e, gpa | ALL);
        self
    }

    fn map_2m(&mut self, la: u64, gpa: u64) -> &mut Self {
        let e = self.entry(la, 2);
        self.ram.set_u64(e, gpa | ALL | PS);
        self
    }

    fn map_1g(&mut self, la: u64, gpa: u64) -> &mut Self {
        let e = self.entry(la, 3);
        self.ram.set_u64(e, gpa | ALL | PS);
        self
    }

    /// Set then clear bits in the existing level-`level` entry for `la`.
    fn modify(&mut self, la: u64, level: u8, set: u64, clear: u64) -> &mut Self {
        let e = self.entry(la, level);
        let v = self.ram.u64_at(e);
        self.ram.set_u64(e, (v | set) & !clear);
        self
    }

    fn translate(&self, la: u64, write: bool, user: bool) -> Result<u64, MemError> {
        translate(&self.mode(), &self.ram, la, Access { write, user })
    }

    fn read(&self, la: u64, len: usize, user: bool) -> Result<Vec<u8>, MemError> {
        let mut buf = vec![0u8; len];
        read_linear(&self.mode(), &self.ram, la, &mut buf, user).map(|()| buf)
    }

    fn write(&mut self, la: u64, data: &[u8], user: bool) -> Result<(), MemError> {
        let mode = self.mode();
        write_linear(&mode, &mut self.ram, la, data, user)
    }
}

// ---- page sizes -----------------------------------------------------------

#[test]
fn four_k_page_translates_and_reads() {
    let mut g = Guest::new();
    g.map_4k(LA, DATA);
    g.ram.poke(DATA + 0x123, b"guest bytes");
    assert_eq!(g.translate(LA + 0x123, false, true), Ok(DATA + 0x123));
    assert_eq!(g.translate(LA + 0xfff, true, false), Ok(DATA + 0xfff));
    assert_eq!(g.read(LA + 0x123, 11, true).unwrap(), b"guest bytes");
    // The neighbouring linear page is not mapped.
    assert_eq!(
        g.translate(LA + 0x1000, false, false),
        Err(MemError::NotPresent {
            addr: LA + 0x1000,
            level: 1
        })
    );
}

#[test]
fn two_m_page_translates_and_reads() {
    let mut g = Guest::new();
    g.map_2m(LA_2M, DATA_2M);
    g.ram.poke(DATA_2M + 0x1_2345, b"2M");
    assert_eq!(
        g.translate(LA_2M + 0x1_2345, false, false),
        Ok(DATA_2M + 0x1_2345)
    );
    assert_eq!(
        g.translate(LA_2M + 0x1f_ffff, true, true),
        Ok(DATA_2M + 0x1f_ffff)
    );
    assert_eq!(g.read(LA_2M + 0x1_2345, 2, true).unwrap(), b"2M");
    // A read spanning two 4 KiB pieces of the same 2 MiB page.
    g.ram.poke(DATA_2M + 0xffe, b"abcd");
    assert_eq!(g.read(LA_2M + 0xffe, 4, false).unwrap(), b"abcd");
}

#[test]
fn one_g_page_translates_and_reads() {
    let mut g = Guest::new();
    g.map_1g(LA_1G, 0);
    g.ram.poke(0x30_0123, b"1G");
    assert_eq!(g.translate(LA_1G + 0x30_0123, false, true), Ok(0x30_0123));
    assert_eq!(
        g.translate(LA_1G + 0x3fff_ffff, true, false),
        Ok(0x3fff_ffff)
    );
    assert_eq!(g.read(LA_1G + 0x30_0123, 2, true).unwrap(), b"1G");
    // Mapped by the guest, but beyond the 4 MiB of guest RAM.
    assert_eq!(
        g.read(LA_1G + 0x3fff_f000, 1, false),
        Err(MemError::OutsideRam { gpa: 0x3fff_f000 })
    );
}

#[test]
fn one_g_page_at_nonzero_base() {
    let mut g = Guest::new();
    g.map_1g(LA_1G, 0x4000_0000);
    assert_eq!(g.translate(LA_1G + 0x1234, false, false), Ok(0x4000_1234));
}

#[test]
fn pat_bits_are_not_address_bits() {
    let mut g = Guest::new();
    // Bit 12 is PAT in large-page entries; bit 7 is PAT in a PTE.
    g.map_2m(LA_2M, DATA_2M).modify(LA_2M, 2, 1 << 12, 0);
    g.map_1g(LA_1G, 0).modify(LA_1G, 3, 1 << 12, 0);
    g.map_4k(LA, DATA).modify(LA, 1, 1 << 7, 0);
    assert_eq!(g.translate(LA_2M + 0x10, false, true), Ok(DATA_2M + 0x10));
    assert_eq!(g.translate(LA_1G + 0x10, false, true), Ok(0x10));
    assert_eq!(g.translate(LA + 0x10, false, true), Ok(DATA + 0x10));
}

#[test]
fn ignored_bits_and_cr3_extras_are_ignored() {
    let mut g = Guest::new();
    g.map_4k(KLA, DATA);
    // Available bits 11:8 and 62:52 (including protection keys), A/D/G.
    for level in 1..=4 {
        g.modify(KLA, level, (0x7ff << 52) | (0xf << 8) | (1 << 5), 0);
    }
    g.modify(KLA, 1, 1 << 6, 0);
    g.cr3 |= 0x018; // PWT, PCD
    let mut mode = g.mode();
    mode.cr3 |= (1 << 62) | (1 << 61); // LAM bits
    assert_eq!(
        translate(&mode, &g.ram, KLA + 8, Access::read(false)),
        Ok(DATA + 8)
    );
    let mut mode = g.mode();
    mode.cr3 |= 0xabc; // a PCID
    assert_eq!(
        translate(&mode, &g.ram, KLA + 8, Access::read(false)),
        Ok(DATA + 8)
    );
}

#[test]
fn no_accessed_or_dirty_updates() {
    let mut g = Guest::new();
    g.map_4k(LA, DATA);
    let tables_before = g.ram.peek(TABLES, (g.next_table - TABLES) as usize);
    g.write(LA + 4, b"data", true).unwrap();
    assert_eq!(g.read(LA + 4, 4, true).unwrap(), b"data");
    assert_eq!(
        g.ram.peek(TABLES, (g.next_table - TABLES) as usize),
        tables_before
    );
    assert_eq!(g.ram.writes(), vec![Op::Write(DATA + 4, 4)]);
}

// ---- present bit ----------------------------------------------------------

#[test]
fn not_present_at_each_level() {
    for level in 1..=4u8 {
        for (la, user) in [(LA + 0x10, true), (KLA + 0x10, false)] {
            let mut g = Guest::new();
            g.map_4k(la, DATA).modify(la, level, 0, P);
            let want = MemError::NotPresent { addr: la, level };
            assert_eq!(g.translate(la, false, user), Err(want), "level {level}");
            assert_eq!(g.translate(la, true, user), Err(want), "level {level}");
            assert_eq!(g.read(la, 1, user), Err(want));
            assert_eq!(g.write(la, b"x", user), Err(want));
            assert!(g.ram.writes().is_empty());
        }
    }
}

#[test]
fn not_present_large_page_entries() {
    let mut g = Guest::new();
    g.map_2m(LA_2M, DATA_2M).modify(LA_2M, 2, 0, P);
    assert_eq!(
        g.translate(LA_2M, false, false),
        Err(MemError::NotPresent {
            addr: LA_2M,
            level: 2
        })
    );
    g.map_1g(LA_1G, 0).modify(LA_1G, 3, 0, P);
    assert_eq!(
        g.translate(LA_1G + 5, false, false),
        Err(MemError::NotPresent {
            addr: LA_1G + 5,
            level: 3
        })
    );
}

#[test]
fn empty_page_tables() {
    let g = Guest::new();
    assert_eq!(
        g.translate(LA, false, false),
        Err(MemError::NotPresent { addr: LA, level: 4 })
    );
    assert_eq!(
        g.translate(KLA, true, true),
        Err(MemError::NotPresent {
            addr: KLA,
            level: 4
        })
    );
}

// ---- user/supervisor ------------------------------------------------------

#[test]
fn user_needs_us_at_every_level() {
    for level in 1..=4u8 {
        let mut g = Guest::new();
        g.map_4k(LA, DATA).modify(LA, level, 0, US);
        g.ram.poke(DATA + 8, b"secret");
        let want = MemError::Supervisor { addr: LA + 8 };
        assert_eq!(g.translate(LA + 8, false, true), Err(want), "level {level}");
        assert_eq!(g.translate(LA + 8, true, true), Err(want), "level {level}");
        assert_eq!(g.read(LA + 8, 6, true), Err(want));
        assert_eq!(g.write(LA + 8, b"XXXXXX", true), Err(want));
        assert_eq!(g.ram.peek(DATA + 8, 6), b"secret");
        // A supervisor caller may read and write it.
        assert_eq!(g.read(LA + 8, 6, false).unwrap(), b"secret");
        g.write(LA + 8, b"public", false).unwrap();
        assert_eq!(g.ram.peek(DATA + 8, 6), b"public");
    }
}

#[test]
fn user_us_on_large_pages() {
    let mut g = Guest::new();
    g.map_2m(LA_2M, DATA_2M).modify(LA_2M, 2, 0, US);
    g.map_1g(LA_1G, 0).modify(LA_1G, 3, 0, US);
    assert_eq!(
        g.translate(LA_2M, false, true),
        Err(MemError::Supervisor { addr: LA_2M })
    );
    assert_eq!(
        g.translate(LA_1G, false, true),
        Err(MemError::Supervisor { addr: LA_1G })
    );
    assert_eq!(g.translate(LA_2M, false, false), Ok(DATA_2M));
    assert_eq!(g.translate(LA_1G, false, false), Ok(0));
}

#[test]
fn user_with_us_everywhere_is_allowed() {
    let mut g = Guest::new();
    g.map_4k(LA, DATA);
    assert_eq!(g.translate(LA, false, true), Ok(DATA));
    assert_eq!(g.translate(LA, true, true), Ok(DATA));
}

#[test]
fn supervisor_ignores_us_even_with_smap_smep_pke() {
    let mut g = Guest::new();
    g.map_4k(LA, DATA);
    let mut mode = g.mode();
    mode.cr4 |= (1 << 20) | (1 << 21) | (1 << 22); // SMEP, SMAP, PKE: not applied
    assert_eq!(translate(&mode, &g.ram, LA, Access::read(false)), Ok(DATA));
    assert_eq!(translate(&mode, &g.ram, LA, Access::write(false)), Ok(DATA));
}

// ---- read/write -----------------------------------------------------------

#[test]
fn write_needs_rw_at_every_level() {
    for level in 1..=4u8 {
        for (la, user) in [(LA, true), (LA, false), (KLA, false)] {
            let mut g = Guest::new();
            g.map_4k(la, DATA).modify(la, level, 0, RW);
            g.ram.poke(DATA, b"ro");
            assert!(g.wp);
            let want = MemError::ReadOnly { addr: la };
            assert_eq!(
                g.translate(la, true, user),
                Err(want),
                "level {level} user {user}"
            );
            assert_eq!(g.write(la, b"rw", user), Err(want));
            assert_eq!(g.ram.peek(DATA, 2), b"ro");
            assert!(g.ram.writes().is_empty());
            // Reads are fine.
            assert_eq!(g.read(la, 2, user).unwrap(), b"ro");
        }
    }
}

#[test]
fn cr0_wp_clear_lets_supervisor_write_read_only_pages() {
    for level in 1..=4u8 {
        let mut g = Guest::new();
        g.wp = false;
        g.map_4k(KLA, DATA).modify(KLA, level, 0, RW);
        g.map_4k(LA, DATA + 0x1000).modify(LA, level, 0, RW);
        assert_eq!(g.translate(KLA, true, false), Ok(DATA));
        g.write(KLA, b"wp0", false).unwrap();
        assert_eq!(g.ram.peek(DATA, 3), b"wp0");
        // Supervisor write to a user page, read-only: WP=0 allows it too.
        g.write(LA, b"usr", false).unwrap();
        assert_eq!(g.ram.peek(DATA + 0x1000, 3), b"usr");
        // A user write still needs R/W.
        assert_eq!(
            g.write(LA, b"no", true),
            Err(MemError::ReadOnly { addr: LA })
        );
    }
}

#[test]
fn large_pages_read_only() {
    let mut g = Guest::new();
    g.map_2m(LA_2M, DATA_2M).modify(LA_2M, 2, 0, RW);
    g.map_1g(LA_1G, 0).modify(LA_1G, 3, 0, RW);
    assert_eq!(
        g.translate(LA_2M + 1, true, false),
        Err(MemError::ReadOnly { addr: LA_2M + 1 })
    );
    assert_eq!(
        g.translate(LA_1G + 1, true, true),
        Err(MemError::ReadOnly { addr: LA_1G + 1 })
    );
    g.wp = false;
    assert_eq!(g.translate(LA_2M + 1, true, false), Ok(DATA_2M + 1));
}

#[test]
fn error_precedence() {
    // Supervisor before read-only.
    let mut g = Guest::new();
    g.map_4k(LA, DATA).modify(LA, 4, 0, US | RW);
    assert_eq!(
        g.translate(LA, true, true),
        Err(MemError::Supervisor { addr: LA })
    );
    // A lower-level not-present entry wins over a higher-level U/S = 0.
    let mut g = Guest::new();
    g.map_4k(LA, DATA).modify(LA, 4, 0, US).modify(LA, 1, 0, P);
    assert_eq!(
        g.translate(LA, false, true),
        Err(MemError::NotPresent { addr: LA, level: 1 })
    );
    // Reserved bits in a lower level win over rights.
    let mut g = Guest::new();
    g.nxe = false;
    g.map_4k(LA, DATA).modify(LA, 3, 0, RW).modify(LA, 1, XD, 0);
    assert_eq!(
        g.translate(LA, true, true),
        Err(MemError::Reserved { addr: LA, level: 1 })
    );
    // Not present is checked before reserved bits (P=0 makes the rest ignored).
    let mut g = Guest::new();
    g.nxe = false;
    g.map_4k(LA, DATA).modify(LA, 2, XD | (1 << 51), P);
    assert_eq!(
        g.translate(LA, false, false),
        Err(MemError::NotPresent { addr: LA, level: 2 })
    );
}

// ---- page-crossing ranges -------------------------------------------------

/// Two adjacent linear pages at LA, LA+0x1000 mapped to non-adjacent
/// guest-physical pages DATA+0x5000 and DATA.
fn two_pages() -> Guest {
    let mut g = Guest::new();
    g.map_4k(LA, DATA + 0x5000).map_4k(LA + 0x1000, DATA);
    g
}

#[test]
fn crossing_read_and_write_both_pages_fine() {
    let mut g = two_pages();
    g.ram.poke(DATA + 0x5ffc, b"abcd");
    g.ram.poke(DATA, b"efgh");
    assert_eq!(g.read(LA + 0xffc, 8, true).unwrap(), b"abcdefgh");
    g.ram.log.borrow_mut().clear();
    g.write(LA + 0xffd, b"12345", true).unwrap();
    assert_eq!(g.ram.peek(DATA + 0x5ff8, 8), b"\0\0\0\0a123");
    assert_eq!(g.ram.peek(DATA, 8), b"45gh\0\0\0\0");
    assert_eq!(
        g.ram.writes(),
        vec![Op::Write(DATA + 0x5ffd, 3), Op::Write(DATA, 2)]
    );
}

#[test]
fn crossing_second_page_not_present() {
    let mut g = two_pages();
    g.modify(LA + 0x1000, 1, 0, P);
    g.ram.poke(DATA + 0x5ffe, b"ok");
    let want = MemError::NotPresent {
        addr: LA + 0x1000,
        level: 1,
    };
    assert_eq!(g.read(LA + 0xffe, 4, false), Err(want));
    assert_eq!(g.write(LA + 0xffe, b"XXXX", false), Err(want));
    // Nothing written, not even the first page.
    assert_eq!(g.ram.peek(DATA + 0x5ffe, 2), b"ok");
    assert!(g.ram.writes().is_empty());
    // The first page alone is fine.
    assert_eq!(g.read(LA + 0xffe, 2, false).unwrap(), b"ok");
}

#[test]
fn crossing_second_page_supervisor_only() {
    let mut g = two_pages();
    g.modify(LA + 0x1000, 1, 0, US);
    let want = MemError::Supervisor { addr: LA + 0x1000 };
    assert_eq!(g.read(LA + 0xfff, 2, true), Err(want));
    assert_eq!(g.write(LA + 0xfff, b"XX", true), Err(want));
    assert!(g.ram.writes().is_empty());
    // Supervisor: fine.
    g.write(LA + 0xfff, b"YZ", false).unwrap();
    assert_eq!(g.read(LA + 0xfff, 2, false).unwrap(), b"YZ");
    assert_eq!(g.ram.peek(DATA + 0x5fff, 1), b"Y");
    assert_eq!(g.ram.peek(DATA, 1), b"Z");
}

#[test]
fn crossing_second_page_read_only() {
    let mut g = two_pages();
    g.modify(LA + 0x1000, 1, 0, RW);
    assert_eq!(
        g.write(LA + 0xfff, b"XX", false),
        Err(MemError::ReadOnly { addr: LA + 0x1000 })
    );
    assert!(g.ram.writes().is_empty());
}

#[test]
fn crossing_second_page_outside_ram() {
    let mut g = two_pages();
    g.modify(LA + 0x1000, 1, 0x4000_0000, 0);
    assert_eq!(
        g.read(LA + 0xfff, 2, false),
        Err(MemError::OutsideRam {
            gpa: 0x4000_0000 + DATA
        })
    );
}

#[test]
fn pieces_are_exact() {
    let mut g = two_pages();
    g.map_4k(LA + 0x2000, DATA + 0x7000);
    let mode = g.mode();
    let got: Vec<_> = pieces(&mode, &g.ram, LA + 0xf00, 0x1200, Access::read(true))
        .unwrap()
        .collect();
    assert_eq!(
        got,
        vec![
            Ok(Piece {
                la: LA + 0xf00,
                gpa: DATA + 0x5f00,
                offset: 0,
                len: 0x100
            }),
            Ok(Piece {
                la: LA + 0x1000,
                gpa: DATA,
                offset: 0x100,
                len: 0x1000
            }),
            Ok(Piece {
                la: LA + 0x2000,
                gpa: DATA + 0x7000,
                offset: 0x1100,
                len: 0x100
            }),
        ]
    );
    // A failure ends the iteration.
    let mut it = pieces(&mode, &g.ram, LA + 0x2ff0, 0x20, Access::read(true)).unwrap();
    assert_eq!(
        it.next(),
        Some(Ok(Piece {
            la: LA + 0x2ff0,
            gpa: DATA + 0x7ff0,
            offset: 0,
            len: 0x10
        }))
    );
    assert_eq!(
        it.next(),
        Some(Err(MemError::NotPresent {
            addr: LA + 0x3000,
            level: 1
        }))
    );
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
    // Zero length: nothing.
    assert_eq!(
        pieces(&mode, &g.ram, LA, 0, Access::read(true))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn exact_page_reads_touch_one_page() {
    let g = two_pages();
    g.ram.log.borrow_mut().clear();
    let buf = g.read(LA + 0x1000, 0x1000, false).unwrap();
    assert_eq!(buf.len(), 0x1000);
    let data_reads: Vec<_> = g
        .ram
        .log
        .borrow()
        .iter()
        .copied()
        .filter(|op| matches!(op, Op::Read(_, n) if *n != 8))
        .collect();
    assert_eq!(data_reads, vec![Op::Read(DATA, 0x1000)]);
}

// ---- canonical addresses and range overflow -------------------------------

#[test]
fn non_canonical_addresses() {
    let g = Guest::new();
    for la in [
        0x0000_8000_0000_0000,
        0xffff_7fff_ffff_ffff,
        0x8000_0000_0000_0000,
        0x0001_0000_0000_0000,
    ] {
        assert_eq!(
            g.translate(la, false, false),
            Err(MemError::NonCanonical { addr: la })
        );
        assert_eq!(
            g.read(la, 1, true),
            Err(MemError::NonCanonical { addr: la })
        );
    }
    assert!(g.ram.log.borrow().is_empty());
}

#[test]
fn range_crossing_into_non_canonical() {
    let mut g = Guest::new();
    g.map_4k(0x0000_7fff_ffff_f000, DATA);
    assert_eq!(
        g.read(0x0000_7fff_ffff_fff0, 0x10, true).unwrap(),
        vec![0; 0x10]
    );
    assert_eq!(
        g.read(0x0000_7fff_ffff_fff0, 0x11, true),
        Err(MemError::NonCanonical {
            addr: 0x0000_8000_0000_0000
        })
    );
    assert_eq!(
        g.write(0x0000_7fff_ffff_fff0, &[1; 0x11], true),
        Err(MemError::NonCanonical {
            addr: 0x0000_8000_0000_0000
        })
    );
    assert!(g.ram.writes().is_empty());
}

#[test]
fn top_of_address_space() {
    let mut g = Guest::new();
    g.map_4k(0xffff_ffff_ffff_f000, DATA);
    g.ram.poke(DATA + 0xffd, b"end");
    // Last byte is the last byte of the address space: no overflow.
    assert_eq!(g.read(0xffff_ffff_ffff_fffd, 3, false).unwrap(), b"end");
    g.write(0xffff_ffff_ffff_ffff, b"!", false).unwrap();
    assert_eq!(g.ram.peek(DATA + 0xfff, 1), b"!");
    // One more byte wraps.
    assert_eq!(
        g.read(0xffff_ffff_ffff_fffd, 4, false),
        Err(MemError::RangeOverflow {
            addr: 0xffff_ffff_ffff_fffd,
            len: 4
        })
    );
    assert_eq!(
        g.write(0xffff_ffff_ffff_ffff, b"!!", false),
        Err(MemError::RangeOverflow {
            addr: 0xffff_ffff_ffff_ffff,
            len: 2
        })
    );
}

#[test]
fn range_overflow_is_checked_first() {
    let mut g = Guest::new();
    let want = MemError::RangeOverflow {
        addr: u64::MAX - 1,
        len: 16,
    };
    assert_eq!(g.read(u64::MAX - 1, 16, false), Err(want));
    assert_eq!(g.write(u64::MAX - 1, &[0; 16], false), Err(want));
    // Even in an unsupported mode, and with paging disabled.
    let mut buf = [0u8; 16];
    let bad = PagingMode::new(CR0_PG, 0, 0, 0);
    assert_eq!(
        read_linear(&bad, &g.ram, u64::MAX - 1, &mut buf, false),
        Err(want)
    );
    assert_eq!(
        read_linear(
            &PagingMode::disabled(),
            &g.ram,
            u64::MAX - 1,
            &mut buf,
            false
        ),
        Err(want)
    );
    assert!(pieces(&g.mode(), &g.ram, u64::MAX, 2, Access::read(false)).is_err());
    assert!(g.ram.log.borrow().is_empty());
}

#[test]
fn zero_length_touches_nothing() {
    let mut g = Guest::new();
    for la in [0, LA, 0x0000_8000_0000_0000, u64::MAX] {
        assert_eq!(g.read(la, 0, true), Ok(vec![]));
        assert_eq!(g.write(la, &[], true), Ok(()));
        let bad = PagingMode::new(CR0_PG | CR0_WP, 0, CR4_PAE | CR4_LA57, EFER_LMA);
        assert_eq!(read_linear(&bad, &g.ram, la, &mut [], false), Ok(()));
        assert_eq!(write_linear(&bad, &mut g.ram, la, &[], false), Ok(()));
    }
    assert!(g.ram.log.borrow().is_empty());
}

// ---- reserved bits --------------------------------------------------------

#[test]
fn ps_in_pml4e_is_reserved() {
    let mut g = Guest::new();
    g.map_4k(LA, DATA).modify(LA, 4, PS, 0);
    assert_eq!(
        g.translate(LA, false, false),
        Err(MemError::Reserved { addr: LA, level: 4 })
    );
    assert_eq!(
        g.read(LA, 1, false),
        Err(MemError::Reserved { addr: LA, level: 4 })
    );
}

#[test]
fn maxphyaddr_bits_are_reserved_at_each_level() {
    for level in 1..=4u8 {
        let mut g = Guest::new();
        g.map_4k(LA, DATA).modify(LA, level, 1 << 45, 0);
        let m39 = g.mode().with_maxphyaddr(39);
        assert_eq!(
            translate(&m39, &g.ram, LA, Access::read(false)),
            Err(MemError::Reserved { addr: LA, level })
        );
        let m46 = g.mode().with_maxphyaddr(46);
        let r = translate(&m46, &g.ram, LA, Access::read(false));
        if level == 1 {
            // The PTE's address bit 45 is a real address bit: outside RAM later.
            assert_eq!(r, Ok(DATA | 1 << 45));
            let mut b = [0u8];
            assert_eq!(
                read_linear(&m46, &g.ram, LA, &mut b, false),
                Err(MemError::OutsideRam {
                    gpa: DATA | 1 << 45
                })
            );
        } else {
            // A table outside RAM.
            assert!(
                matches!(r, Err(MemError::OutsideRam { gpa }) if gpa & (1 << 45) != 0),
                "{r:?}"
            );
        }
    }
}

#[test]
fn bit_51_reserved_below_52_bits_only() {
    let mut g = Guest::new();
    g.map_4k(LA, DATA).modify(LA, 1, 1 << 51, 0);
    let m = g.mode().with_maxphyaddr(48);
    assert_eq!(
        translate(&m, &g.ram, LA, Access::read(false)),
        Err(MemError::Reserved { addr: LA, level: 1 })
    );
    // Default 52 bits: bit 51 is an address bit.
    assert_eq!(g.translate(LA, false, false), Ok(DATA | 1 << 51));
}

#[test]
fn xd_reserved_without_nxe() {
    for level in 1..=4u8 {
        let mut g = Guest::new();
        g.map_4k(LA, DATA).modify(LA, level, XD, 0);
        assert_eq!(
            g.translate(LA, false, false),
            Ok(DATA),
            "NXE=1 level {level}"
        );
        g.nxe = false;
        assert_eq!(
            g.translate(LA, false, false),
            Err(MemError::Reserved { addr: LA, level })
        );
    }
}

#[test]
fn large_page_alignment_bits_are_reserved() {
    let mut g = Guest::new();
    g.map_1g(LA_1G, 0);
    for bit in 13..=29 {
        g.modify(LA_1G, 3, 1 << bit, 0);
        assert_eq!(
            g.translate(LA_1G, false, false),
            Err(MemError::Reserved {
                addr: LA_1G,
                level: 3
            }),
            "bit {bit}"
        );
        g.modify(LA_1G, 3, 0, 1 << bit);
    }
    assert_eq!(g.translate(LA_1G, false, false), Ok(0));
    g.map_2m(LA_2M, DATA_2M);
    for bit in 13..=20 {
        g.modify(LA_2M, 2, 1 << bit, 0);
        assert_eq!(
            g.translate(LA_2M, false, false),
            Err(MemError::Reserved {
                addr: LA_2M,
                level: 2
            }),
            "bit {bit}"
        );
        g.modify(LA_2M, 2, 0, 1 << bit);
    }
    assert_eq!(g.translate(LA_2M, false, false), Ok(DATA_2M));
}

#[test]
fn table_entries_have_no_alignment_reserved_bits() {
    // Bits 20:13 of a PDE referencing a page table are address bits.
    let mut g = Guest::new();
    g.map_4k(LA, DATA);
    assert_eq!(g.translate(LA, false, false), Ok(DATA));
    // Move the page table to a gpa with bit 13 set and check the walk follows.
    let pde = g.entry(LA, 2);
    let old_pt = g.ram.u64_at(pde) & 0x000f_ffff_ffff_f000;
    let new_pt = 0x8_2000;
    assert_ne!(new_pt & (1 << 13), 0);
    let pt = g.ram.peek(old_pt, 0x1000);
    g.ram.poke(new_pt, &pt);
    g.ram
        .set_u64(new_pt + index(LA, 1) * 8, (DATA + 0x3000) | ALL);
    g.ram.set_u64(pde, new_pt | ALL);
    assert_eq!(g.translate(LA, false, false), Ok(DATA + 0x3000));
}

// ---- outside RAM ----------------------------------------------------------

#[test]
fn data_outside_ram() {
    let mut g = Guest::new();
    g.map_4k(LA, 0x1000_0000);
    assert_eq!(g.translate(LA + 4, false, true), Ok(0x1000_0004));
    assert_eq!(
        g.read(LA + 4, 4, true),
        Err(MemError::OutsideRam { gpa: 0x1000_0004 })
    );
    assert_eq!(
        g.write(LA + 4, b"abcd", true),
        Err(MemError::OutsideRam { gpa: 0x1000_0004 })
    );
}

#[test]
fn tables_outside_ram() {
    let mut g = Guest::new();
    g.map_4k(LA, DATA);
    let pde = g.entry(LA, 2);
    g.ram.set_u64(pde, 0x8000_0000 | ALL);
    assert_eq!(
        g.translate(LA, false, false),
        Err(MemError::OutsideRam {
            gpa: 0x8000_0000 + index(LA, 1) * 8
        })
    );
    let mut g = Guest::new();
    g.cr3 = 0x10_0000_0000;
    assert_eq!(
        g.translate(LA, false, false),
        Err(MemError::OutsideRam {
            gpa: 0x10_0000_0000 + index(LA, 4) * 8
        })
    );
}

// ---- check first, then write ------------------------------------------------

/// Regression (docs/ABI.md: a call that fails with -EFAULT has written no
/// guest memory): a buffer that runs from guest RAM into memory outside
/// it used to get its RAM part written before the error.
#[test]
fn a_write_from_ram_into_mmio_writes_nothing() {
    let mut g = two_pages();
    g.modify(LA + 0x1000, 1, 0x4000_0000, 0);
    assert_eq!(
        g.write(LA + 0xff0, &[0xee; 0x20], false),
        Err(MemError::OutsideRam {
            gpa: 0x4000_0000 + DATA
        })
    );
    assert!(g.ram.writes().is_empty(), "{:?}", g.ram.writes());
    assert!(g.ram.peek(DATA, 0x2000).iter().all(|&b| b == 0));
}

/// `n` linear pages from `LA`, each mapped to its own data page.
fn long_range(n: u64) -> Guest {
    let mut g = Guest::new();
    for i in 0..n {
        g.map_4k(LA + i * 0x1000, DATA + i * 0x1000);
    }
    g
}

#[test]
fn long_writes_are_checked_whole_first() {
    // 80 pages: more than the 64 pieces whose translations are kept.
    let data: Vec<u8> = (0..80 * 0x1000).map(|i| (i % 251) as u8).collect();
    let mut g = long_range(80);
    assert_eq!(g.write(LA, &data, false), Ok(()));
    assert_eq!(g.ram.peek(DATA, data.len()), data);
    // The last page not present, read-only, outside RAM: nothing written.
    type Spoil = fn(&mut Guest);
    let spoils: [(Spoil, MemError); 3] = [
        (
            |g| {
                g.modify(LA + 79 * 0x1000, 1, 0, P);
            },
            MemError::NotPresent {
                addr: LA + 79 * 0x1000,
                level: 1,
            },
        ),
        (
            |g| {
                g.modify(LA + 79 * 0x1000, 1, 0, RW);
            },
            MemError::ReadOnly {
                addr: LA + 79 * 0x1000,
            },
        ),
        (
            |g| {
                g.modify(LA + 79 * 0x1000, 1, 0x4000_0000, 0);
            },
            MemError::OutsideRam {
                gpa: 0x4000_0000 + DATA + 79 * 0x1000,
            },
        ),
    ];
    for (spoil, err) in spoils {
        let mut g = long_range(80);
        spoil(&mut g);
        g.ram.log.borrow_mut().clear();
        assert_eq!(g.write(LA + 5, &data[5..], false), Err(err));
        assert!(
            g.ram.writes().is_empty(),
            "{err:?}: {:?}",
            &g.ram.writes()[..2]
        );
    }
}

#[test]
fn a_long_write_over_its_own_page_table_is_refused() {
    let mut g = long_range(80);
    // Page 70 of the range is the page table that maps it.
    let pt = g.entry(LA, 1) & !0xfff;
    g.map_4k(LA + 70 * 0x1000, pt);
    let data = vec![0u8; 80 * 0x1000];
    g.ram.log.borrow_mut().clear();
    assert_eq!(
        g.write(LA, &data, false),
        Err(MemError::OverwritesOwnTables {
            addr: LA + 70 * 0x1000
        })
    );
    assert!(g.ram.writes().is_empty());
    // Within the kept pieces the same overlap is fine: the write goes
    // where it was checked.
    let mut g = long_range(3);
    let pt = g.entry(LA, 1) & !0xfff;
    g.map_4k(LA + 0x1000, pt);
    let mut data = vec![0x11u8; 3 * 0x1000];
    data[0x1000..0x2000].fill(0);
    assert_eq!(g.write(LA, &data, false), Ok(()));
    assert!(g.ram.peek(DATA + 0x2000, 0x1000).iter().all(|&b| b == 0x11));
}

/// Issue 24, finding 3: a long write whose pages all map one frame that a
/// 4096-bit filter of the paging structures cannot tell from one of them
/// made every piece re-walk every piece (n^2 walks). The walker now does a
/// bounded number of walks per piece: at most four (check, the tables, the
/// data frames, the write), that is 16 entry reads per piece.
#[test]
fn a_long_write_aliased_to_one_frame_walks_linearly() {
    let n = 300u64;
    let mut g = Guest::with_ram(64 << 20);
    for i in 0..n {
        g.map_4k(LA + i * 0x1000, DATA + i * 0x1000);
    }
    let tables: Vec<u64> = (TABLES..g.next_table).step_by(0x1000).collect();
    // The filter the walker used: the top 12 bits of a multiplicative
    // hash of the frame number. Find a data frame that shares a slot
    // with a paging structure without being one (the attack's input).
    let slot = |gpa: u64| (gpa >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52;
    let frame = (DATA..(64 << 20))
        .step_by(0x1000)
        .find(|&f| tables.iter().any(|&t| slot(t) == slot(f)))
        .expect("a colliding frame in 64 MiB");
    for i in 0..n {
        g.map_4k(LA + i * 0x1000, frame);
    }
    let data: Vec<u8> = (0..n * 0x1000).map(|i| (i / 0x1000) as u8).collect();
    g.ram.log.borrow_mut().clear();
    assert_eq!(g.write(LA, &data, false), Ok(()));
    let entry_reads = g
        .ram
        .log
        .borrow()
        .iter()
        .filter(|op| matches!(op, Op::Read(gpa, 8) if *gpa < DATA))
        .count() as u64;
    assert!(
        entry_reads <= 16 * n,
        "{entry_reads} paging-entry reads for {n} pieces"
    );
    // The last piece's data is what the frame holds.
    assert_eq!(g.ram.peek(frame, 0x1000), vec![(n - 1) as u8; 0x1000]);
}

proptest! {
    /// Writes of 60 to 90 pages (around the 64 kept pieces) through tables
    /// whose entries sometimes point at the tables themselves, outside
    /// RAM, or lack a right, against the model.
    #[test]
    fn long_writes_match_the_model(
        fault in prop::option::of((0usize..96, 0u8..4)),
        alias in prop::option::of((0usize..96, 4u8..7)),
        start in 0u64..0x2000,
        pages in 60u64..90,
        user in any::<bool>(),
        wp in any::<bool>(),
    ) {
        let mut g = Guest::new();
        g.wp = wp;
        for i in 0..96u64 {
            g.map_4k(LA + i * 0x1000, DATA + i * 0x1000);
        }
        let first_pt = g.entry(LA, 1) & !0xfff;
        for (i, k) in fault.into_iter().chain(alias) {
            let la = LA + i as u64 * 0x1000;
            match k {
                0 => { g.modify(la, 1, 0, P); }
                1 => { g.modify(la, 1, 0, RW); }
                2 => { g.modify(la, 1, 0, US); }
                3 => { g.modify(la, 1, 0x4000_0000, 0); }
                4 => { g.map_4k(la, first_pt); }
                5 => { let pd = g.entry(la, 2) & !0xfff; g.map_4k(la, pd); }
                _ => { let pml4 = g.cr3; g.map_4k(la, pml4); }
            }
        }
        let len = (pages * 0x1000 - start) as usize;
        let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x3c).collect();
        let mode = g.mode();
        let (want_ram, want) = model::write(&mode, &g.ram.bytes, LA + start, &data, user);
        g.ram.log.borrow_mut().clear();
        let got = g.write(LA + start, &data, user);
        prop_assert_eq!(got, want);
        prop_assert!(g.ram.bytes == want_ram, "write_linear changed other bytes than the model");
        if got.is_err() {
            prop_assert!(g.ram.writes().is_empty());
        }
    }
}

// ---- modes ----------------------------------------------------------------

#[test]
fn paging_disabled_is_identity() {
    let mut ram = Ram::new(RAM_SIZE);
    ram.poke(0x1234, b"flat");
    let mode = PagingMode::disabled();
    assert_eq!(mode.kind(), Ok(PagingKind::Disabled));
    assert_eq!(PagingMode::default(), mode);
    for la in [0, 0x1234, 0xdead_0000_0000, 0x0000_8000_0000_0000, u64::MAX] {
        assert_eq!(translate(&mode, &ram, la, Access::write(true)), Ok(la));
    }
    let mut buf = [0u8; 4];
    read_linear(&mode, &ram, 0x1234, &mut buf, true).unwrap();
    assert_eq!(&buf, b"flat");
    write_linear(&mode, &mut ram, 0x1ffe, b"wxyz", true).unwrap();
    assert_eq!(ram.peek(0x1ffe, 4), b"wxyz");
    assert_eq!(
        ram.writes(),
        vec![Op::Write(0x1ffe, 2), Op::Write(0x2000, 2)]
    );
    assert_eq!(
        read_linear(&mode, &ram, RAM_SIZE as u64, &mut buf, false),
        Err(MemError::OutsideRam {
            gpa: RAM_SIZE as u64
        })
    );
    // CR0.PG = 0 decides, whatever the other registers hold.
    let odd = PagingMode::new(CR0_WP, 0x1000, CR4_PAE | CR4_LA57, EFER_LMA | EFER_NXE);
    assert_eq!(
        translate(&odd, &ram, 0x5000, Access::read(false)),
        Ok(0x5000)
    );
}

#[test]
fn unsupported_modes() {
    let mut g = Guest::new();
    g.map_4k(LA, DATA);
    let cr3 = g.cr3;
    let cases = [
        ("32-bit paging", PagingMode::new(CR0_PG, cr3, 0, 0)),
        (
            "32-bit paging, LMA without PAE",
            PagingMode::new(CR0_PG, cr3, 0, EFER_LMA),
        ),
        (
            "PAE paging",
            PagingMode::new(CR0_PG, cr3, CR4_PAE, EFER_NXE),
        ),
        (
            "5-level paging",
            PagingMode::new(CR0_PG, cr3, CR4_PAE | CR4_LA57, EFER_LMA),
        ),
    ];
    for (what, mode) in cases {
        assert_eq!(mode.kind(), Err(MemError::UnsupportedMode), "{what}");
        assert_eq!(
            translate(&mode, &g.ram, LA, Access::read(false)),
            Err(MemError::UnsupportedMode),
            "{what}"
        );
        let mut b = [0u8; 2];
        assert_eq!(
            read_linear(&mode, &g.ram, LA, &mut b, false),
            Err(MemError::UnsupportedMode)
        );
        assert_eq!(
            write_linear(&mode, &mut g.ram, LA, &b, false),
            Err(MemError::UnsupportedMode)
        );
    }
    assert!(g
        .ram
        .writes()
        .iter()
        .all(|w| !matches!(w, Op::Write(a, _) if *a >= DATA)));
    let four = PagingMode::new(CR0_PG, cr3, CR4_PAE, EFER_LMA);
    assert_eq!(four.kind(), Ok(PagingKind::FourLevel));
    assert_eq!(four, PagingMode::four_level(cr3, false, false));
}

#[test]
fn access_constructors() {
    assert_eq!(
        Access::from_cpl(3, false),
        Access {
            write: false,
            user: true
        }
    );
    assert_eq!(
        Access::from_cpl(0, true),
        Access {
            write: true,
            user: false
        }
    );
    assert_eq!(Access::from_cpl(1, false), Access::read(false));
    assert_eq!(Access::from_cpl(2, true), Access::write(false));
}

#[test]
fn works_through_dyn() {
    let mut g = Guest::new();
    g.map_4k(LA, DATA);
    g.ram.poke(DATA, b"dyn");
    let mem: &dyn GuestPhysMemory = &g.ram;
    let mut buf = [0u8; 3];
    read_linear(&g.mode(), mem, LA, &mut buf, true).unwrap();
    assert_eq!(&buf, b"dyn");
    let mode = g.mode();
    let mem: &mut dyn GuestPhysMemory = &mut g.ram;
    write_linear(&mode, mem, LA, b"DYN", true).unwrap();
    assert_eq!(g.ram.peek(DATA, 3), b"DYN");
}

// ---- property tests -------------------------------------------------------

/// 16 pages of RAM filled with entries that mostly point back into the RAM,
/// from a seed (xorshift64*), so walks go deep.
fn random_ram(seed: u64) -> Ram {
    let mut ram = Ram::new(16 * 0x1000);
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for i in 0..(16 * 512) {
        let r = next();
        let mut e = ((r >> 8) % 16) << 12 | (r & 0xfff);
        match next() % 16 {
            0 => e |= next() & 0xfff0_0000_0000_0000,
            1 => e |= next(),
            2 => e &= !P,
            _ => e |= P,
        }
        ram.set_u64(i * 8, e);
    }
    ram
}

fn any_la() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        any::<u64>().prop_map(|v| v & 0x0000_7fff_ffff_ffff),
        any::<u64>().prop_map(|v| v | 0xffff_8000_0000_0000),
        (0u64..0x4000).prop_map(|v| 0x0000_8000_0000_0000u64
            .wrapping_sub(0x2000)
            .wrapping_add(v)),
        (0u64..0x2000).prop_map(|v| u64::MAX - v),
    ]
}

proptest! {
    /// Random tables against the reference walker (`model/`): `translate`,
    /// `pieces`, `read_linear` and `write_linear` give what the model
    /// gives, and nothing panics.
    #[test]
    fn random_tables_match_the_model(
        seed in any::<u64>(),
        cr3 in 0u64..0x20,
        cr0_bits in any::<(bool, bool)>(),
        cr4_bits in any::<(bool, bool)>(),
        efer_bits in any::<(bool, bool)>(),
        maxphy in any::<u8>(),
        la in any_la(),
        len in 0usize..0x3000,
        user in any::<bool>(),
    ) {
        let mut ram = random_ram(seed);
        let mode = PagingMode::new(
            if cr0_bits.0 { CR0_PG } else { 0 } | if cr0_bits.1 { CR0_WP } else { 0 },
            (cr3 << 12) | (seed & 0xfff),
            if cr4_bits.0 { CR4_PAE } else { 0 } | if cr4_bits.1 { CR4_LA57 } else { 0 },
            if efer_bits.0 { EFER_LMA } else { 0 } | if efer_bits.1 { EFER_NXE } else { 0 },
        ).with_maxphyaddr(maxphy);

        for write in [false, true] {
            let got = translate(&mode, &ram, la, Access { write, user });
            let want = model::walk(&mode, &ram.bytes, la, write, user).map(|w| w.gpa);
            prop_assert_eq!(got, want, "translate, write {}", write);
        }

        // Pieces tile the range exactly, each within one page, and each
        // translates as the model says.
        match pieces(&mode, &ram, la, len, Access::write(user)) {
            Err(e) => {
                prop_assert_eq!(e, MemError::RangeOverflow { addr: la, len: len as u64 });
                prop_assert!(len > 0 && la.checked_add(len as u64 - 1).is_none());
            }
            Ok(it) => {
                let mut off = 0usize;
                let mut failed = false;
                for p in it {
                    prop_assert!(!failed, "a piece after an error");
                    let at = la + off as u64;
                    let want = model::walk(&mode, &ram.bytes, at, true, user).map(|w| w.gpa);
                    match p {
                        Ok(p) => {
                            prop_assert_eq!(p.offset, off);
                            prop_assert_eq!(p.la, at);
                            prop_assert_eq!(Ok(p.gpa), want);
                            prop_assert!(p.len >= 1 && p.len <= 0x1000);
                            prop_assert!((p.la & 0xfff) + p.len as u64 <= 0x1000);
                            off += p.len;
                        }
                        Err(e) => {
                            prop_assert_eq!(Err(e), want);
                            failed = true;
                        }
                    }
                }
                if !failed {
                    prop_assert_eq!(off, len);
                }
            }
        }

        let mut buf = vec![0u8; len];
        let r = read_linear(&mode, &ram, la, &mut buf, user);
        match model::read(&mode, &ram.bytes, la, len, user) {
            Ok(want) => {
                prop_assert_eq!(r, Ok(()));
                prop_assert!(buf == want, "read_linear read other bytes");
            }
            Err(e) => prop_assert_eq!(r, Err(e)),
        }

        // Check first, then write: on any error nothing is written.
        let data: Vec<u8> = (0..len).map(|i| 0xa5 ^ (i as u8)).collect();
        let (want_ram, want) = model::write(&mode, &ram.bytes, la, &data, user);
        ram.log.borrow_mut().clear();
        let w = write_linear(&mode, &mut ram, la, &data, user);
        prop_assert_eq!(w, want);
        prop_assert!(ram.bytes == want_ram, "write_linear changed other bytes than the model");
        if w.is_err() {
            prop_assert!(ram.writes().is_empty(), "{:?} after {:?}", ram.writes(), w);
        }
    }
}

/// The random tables of the property test reach every outcome of a walk, so
/// the property covers deep walks, not just early failures.
#[test]
fn random_tables_reach_every_outcome() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..400u64 {
        let ram = random_ram(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mode = PagingMode::new(
            CR0_PG | CR0_WP,
            (seed % 16) << 12,
            CR4_PAE,
            EFER_LMA | ((seed & 1) * EFER_NXE),
        )
        .with_maxphyaddr(if seed & 2 == 0 { 52 } else { 40 });
        for i in 0..64u64 {
            let la = (seed.wrapping_mul(0x1234_5678_9abc_def1)
                ^ i.wrapping_mul(0x0000_0f0f_0f0f_f000))
                & 0x0000_7fff_ffff_ffff;
            let r = translate(
                &mode,
                &ram,
                la,
                Access {
                    write: i & 1 == 1,
                    user: i & 2 == 2,
                },
            );
            seen.insert(match r {
                Ok(_) => "ok".to_string(),
                Err(MemError::NotPresent { level, .. }) => format!("not-present-{level}"),
                Err(MemError::Reserved { level, .. }) => format!("reserved-{level}"),
                Err(MemError::Supervisor { .. }) => "supervisor".to_string(),
                Err(MemError::ReadOnly { .. }) => "read-only".to_string(),
                Err(MemError::OutsideRam { .. }) => "outside-ram".to_string(),
                Err(e) => format!("{e:?}"),
            });
        }
    }
    let want = [
        "ok",
        "not-present-1",
        "not-present-2",
        "not-present-3",
        "not-present-4",
        "reserved-1",
        "reserved-2",
        "reserved-3",
        "reserved-4",
        "supervisor",
        "read-only",
        "outside-ram",
    ];
    let want: std::collections::BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, want);
}
