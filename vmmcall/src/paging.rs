//! Guest page-table walks: guest-linear to guest-physical addresses with the
//! caller's privilege.
//!
//! A VMM implements [`Vcpu::read_linear`](crate::Vcpu::read_linear) and
//! [`Vcpu::write_linear`](crate::Vcpu::write_linear) with this module:
//!
//! 1. It implements [`GuestPhysMemory`] for its guest: access to
//!    guest-physical memory through its nested (NPT/EPT) tables. A
//!    guest-physical address that is not guest RAM is
//!    [`MemError::OutsideRam`]; the VMM's own memory is never reachable.
//! 2. On each hypercall it fills a [`PagingMode`] from the guest's CR0, CR3,
//!    CR4 and EFER as saved in the VMCB (SVM) or VMCS (VMX).
//! 3. It calls [`read_linear`] / [`write_linear`] with `user = (CPL == 3)`,
//!    or [`pieces`] to get the `(gpa, len)` runs and copy them itself.
//!
//! ```
//! use vmmcall::paging::{read_linear, GuestPhysMemory, PagingMode};
//! use vmmcall::MemError;
//!
//! /// 64 KiB of guest RAM at guest-physical 0.
//! struct Ram(Vec<u8>);
//!
//! impl GuestPhysMemory for Ram {
//!     fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
//!         let start = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
//!         let end = start.checked_add(buf.len()).ok_or(MemError::OutsideRam { gpa })?;
//!         buf.copy_from_slice(self.0.get(start..end).ok_or(MemError::OutsideRam { gpa })?);
//!         Ok(())
//!     }
//!     fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
//!         let start = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
//!         let end = start.checked_add(data.len()).ok_or(MemError::OutsideRam { gpa })?;
//!         self.0.get_mut(start..end).ok_or(MemError::OutsideRam { gpa })?.copy_from_slice(data);
//!         Ok(())
//!     }
//! }
//!
//! let mut ram = Ram(vec![0; 0x1_0000]);
//! ram.0[0x2000..0x2005].copy_from_slice(b"hello");
//! // Paging disabled: linear = physical.
//! let mode = PagingMode::disabled();
//! let mut buf = [0u8; 5];
//! read_linear(&mode, &ram, 0x2000, &mut buf, false).unwrap();
//! assert_eq!(&buf, b"hello");
//! assert_eq!(
//!     read_linear(&mode, &ram, 0x2_0000, &mut buf, false),
//!     Err(MemError::OutsideRam { gpa: 0x2_0000 })
//! );
//! ```
//!
//! # Supported paging modes
//!
//! The mode is chosen as the processor does (Intel SDM Vol. 3A §4.1.1,
//! Table 4-1; AMD APM Vol. 2 §5.1):
//!
//! | CR0.PG | CR4.PAE | EFER.LMA | CR4.LA57 | Mode                 | Here                                  |
//! |--------|---------|----------|----------|----------------------|---------------------------------------|
//! | 0      | any     | any      | any      | no paging            | linear = guest-physical               |
//! | 1      | 0       | any      | any      | 32-bit paging        | [`MemError::UnsupportedMode`]         |
//! | 1      | 1       | 0        | any      | PAE paging           | [`MemError::UnsupportedMode`]         |
//! | 1      | 1       | 1        | 0        | 4-level paging       | walked, 4 KiB / 2 MiB / 1 GiB pages   |
//! | 1      | 1       | 1        | 1        | 5-level paging       | [`MemError::UnsupportedMode`]         |
//!
//! With paging disabled the linear address is used unchanged as the
//! guest-physical address, all 64 bits of it (no 32-bit wrap): a guest
//! without paging can reach all of its RAM anyway, so this grants nothing,
//! and [`GuestPhysMemory`] rejects what is not guest RAM. The VMM should take
//! EFER.LMA from the VMCB's EFER on SVM, and on VMX from the "IA-32e mode
//! guest" VM-entry control (which is EFER.LMA) if it does not load EFER.
//!
//! # 4-level paging
//!
//! The walk follows Intel SDM Vol. 3A §4.5 (4-level paging) and AMD APM
//! Vol. 2 §5.3 (long-mode page translation):
//! (table numbers are those of SDM revisions that describe 5-level paging;
//! older revisions number them differently)
//!
//! - The linear address must be canonical for 48 bits (bits 63:47 equal),
//!   else [`MemError::NonCanonical`]. CR3 bits 51:12 (below MAXPHYADDR) give
//!   the PML4 table (SDM §4.5); its other bits (PWT, PCD, PCID, LAM)
//!   are ignored.
//! - Each entry must be present (bit 0), else
//!   [`MemError::NotPresent`] with the level (4 = PML4E, 3 = PDPTE, 2 = PDE,
//!   1 = PTE).
//! - Reserved bits of a present entry give [`MemError::Reserved`] with the
//!   level: bits 51:MAXPHYADDR in every entry; bit 63 (XD) when EFER.NXE is
//!   0; PS (bit 7) in a PML4E (SDM Table 4-15); bits 29:13 in a PDPTE that
//!   maps a 1 GiB page (Table 4-16); bits 20:13 in a PDE that maps a 2 MiB
//!   page (Table 4-18). Entries referencing a table and PTEs (Tables 4-15,
//!   4-17, 4-19, 4-20) have only the MAXPHYADDR and XD reserved bits.
//!   MAXPHYADDR is 52 unless [`PagingMode::maxphyaddr`] says otherwise.
//!   Bits the processor ignores (11:8 of table entries, 62:52, the
//!   protection key in 62:59) are ignored. AMD documents a few further
//!   must-be-zero bits in some entries; those are not checked.
//! - Access rights (SDM §4.6.1, APM §5.6): a user access (`user == true`,
//!   the caller runs at CPL 3) needs U/S = 1 in every entry of the walk, else
//!   [`MemError::Supervisor`]. A write needs R/W = 1 in every entry, else
//!   [`MemError::ReadOnly`]; for a supervisor write this applies only when
//!   the guest set CR0.WP = 1 (with WP = 0 a supervisor write to a
//!   read-only page succeeds, as on the processor). Rights are checked after
//!   the whole walk succeeds, so a not-present or reserved entry at a lower
//!   level takes precedence, as for the processor's page-fault error code;
//!   [`MemError::Supervisor`] takes precedence over [`MemError::ReadOnly`].
//!
//! # Decisions
//!
//! - **Privilege.** The access is made with the privilege of the hypercall's
//!   caller: ring 3 is a user access, rings 0 to 2 supervisor accesses. CR0.WP
//!   is honoured as the guest set it for supervisor writes.
//! - **SMAP, SMEP, protection keys (CR4.SMAP, SMEP, PKE, PKS) are not
//!   applied.** The hypercall is an access by the VMM on behalf of the
//!   caller, like a kernel's `copy_from_user`, not an instruction of the
//!   guest: SMEP concerns instruction fetches only, and a ring-0 caller
//!   handing the VMM a user buffer is the expected use, whatever EFLAGS.AC.
//!   XD/NX is not checked (these are data accesses); EFER.NXE only decides
//!   whether bit 63 is reserved.
//! - **No accessed/dirty updates.** The walk never writes the guest's
//!   paging structures: A and D bits are left as they are (SDM §4.8 would
//!   have the processor set them). A guest that relies on D bits to find
//!   pages written by a hypercall must not.
//! - **1 GiB pages** are always walked, whatever CPUID the VMM shows the
//!   guest (the hardware the guest runs on walks them too).
//! - **Encrypted guests** (AMD SEV C-bit, Intel TME-MK key IDs) are not
//!   supported: with such bits set in entries, give the reduced MAXPHYADDR
//!   and they read as reserved.
//! - **Memory access.** The guest's paging structures are read as 8-byte
//!   entries through [`GuestPhysMemory::read_entry`], one load per entry
//!   per walk (a VMM with several vCPUs makes it one atomic load: see
//!   there); the walk decides on that one value. Each piece of a range is
//!   walked for itself, so the entries above the page table are read again
//!   for the next piece; no translation is kept beyond the call that made
//!   it (and none across exits: a [`PagingMode`] describes one exit). Data
//!   bytes are read once each, through [`GuestPhysMemory::read_phys`].
//!   Every call to [`GuestPhysMemory`] covers a range inside one 4 KiB-aligned
//!   guest-physical page, so the VMM needs one nested-table lookup per call.
//!   A walk that reaches a guest-physical address outside guest RAM (a table
//!   or the data) fails with the [`MemError::OutsideRam`] the VMM returns.
//! - **Ranges.** [`read_linear`] and [`write_linear`] split the range at
//!   4 KiB linear-page boundaries and translate each piece. Zero-length
//!   accesses succeed without touching memory or checking the mode. A range
//!   whose last byte would wrap past 2^64 is [`MemError::RangeOverflow`]
//!   before anything else. Errors name the first byte of the failing piece
//!   (for [`MemError::OutsideRam`], its guest-physical address). On a failed
//!   [`read_linear`] the buffer's contents are unspecified.
//! - **Check first, then write.** [`write_linear`] translates and checks
//!   every piece of the range, whatever its length, before it writes any
//!   byte: present, writable at the caller's privilege, and inside guest
//!   RAM ([`GuestPhysMemory::check_phys`]). A write that fails has written
//!   nothing (docs/ABI.md: a call that fails with `-EFAULT` has written no
//!   guest memory). The bytes then go where those checks said, even when
//!   the data overwrites the guest's own paging structures: ranges of up to
//!   [`WRITE_KEPT_PIECES`] pieces are written through the translations
//!   kept from the check. A longer range is translated again while it is
//!   written, which gives the same answers unless the data lands on a
//!   paging structure that translates the range itself; such a write is
//!   refused before anything is written ([`MemError::OverwritesOwnTables`]),
//!   at a cost of four walks per piece up to 512 MiB (linear; see
//!   [`write_linear_all`]). [`write_linear_all`] does the same for several
//!   ranges at once: all of them are checked before the first byte.
//!   Only a [`GuestPhysMemory`] that breaks its contract (a `write_phys`
//!   that fails where `check_phys` succeeded) or a guest changing its
//!   tables concurrently from another vCPU can leave a write half done.
//! - This code never panics and never writes outside the requested range.

use crate::context::{GuestAddr, MemError};
use core::iter::FusedIterator;

/// Size of the smallest page, and the unit [`pieces`] splits ranges at.
pub const PAGE_SIZE: u64 = 4096;

/// CR0.WP (bit 16): supervisor writes honour read-only pages.
pub const CR0_WP: u64 = 1 << 16;
/// CR0.PG (bit 31): paging enabled.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE (bit 5): physical-address extension (64-bit entries).
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57 (bit 12): 5-level paging (not supported here).
pub const CR4_LA57: u64 = 1 << 12;
/// EFER.LMA (bit 10): long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE (bit 11): execute-disable enabled (bit 63 of entries is XD,
/// not reserved).
pub const EFER_NXE: u64 = 1 << 11;

/// The MAXPHYADDR assumed by [`PagingMode::new`]: the architectural maximum.
pub const DEFAULT_MAXPHYADDR: u8 = 52;

/// Present (bit 0).
const PTE_P: u64 = 1;
/// Read/write (bit 1).
const PTE_RW: u64 = 1 << 1;
/// User/supervisor (bit 2).
const PTE_US: u64 = 1 << 2;
/// Page size (bit 7) in PDPTEs and PDEs; reserved in PML4Es.
const PTE_PS: u64 = 1 << 7;
/// Execute-disable (bit 63), reserved unless EFER.NXE = 1.
const PTE_XD: u64 = 1 << 63;
/// Bits 51:0, the widest physical address.
const PHYS_52: u64 = (1 << 52) - 1;
/// Bits 29:13, reserved in a PDPTE that maps a 1 GiB page (Table 4-16).
const RSVD_1G: u64 = ((1 << 30) - 1) & !((1 << 13) - 1);
/// Bits 20:13, reserved in a PDE that maps a 2 MiB page (Table 4-18).
const RSVD_2M: u64 = ((1 << 21) - 1) & !((1 << 13) - 1);
/// Offset within a 4 KiB page.
const OFFSET_4K: u64 = PAGE_SIZE - 1;
/// Offset within a 2 MiB page.
const OFFSET_2M: u64 = (1 << 21) - 1;
/// Offset within a 1 GiB page.
const OFFSET_1G: u64 = (1 << 30) - 1;
/// A 9-bit table index.
const INDEX_MASK: u64 = 0x1ff;

/// Access to the guest's physical memory, as the VMM provides it through
/// its nested page tables (NPT on SVM, EPT on VMX).
///
/// Implementations must never panic, must only reach guest RAM and must
/// return [`MemError::OutsideRam`] for any guest-physical address that is not
/// (unmapped in the nested tables, MMIO, beyond the guest's RAM). The walker
/// only ever asks for ranges within one 4 KiB-aligned guest-physical page.
pub trait GuestPhysMemory {
    /// Copy `buf.len()` bytes of guest-physical memory at `gpa` into `buf`.
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// Copy `data` into guest-physical memory at `gpa`.
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError>;

    /// Whether [`write_phys`](GuestPhysMemory::write_phys) of `len` bytes
    /// at `gpa` would succeed: `Ok` if all of `[gpa, gpa + len)` is guest
    /// RAM, else [`MemError::OutsideRam`] naming `gpa`. [`write_linear`]
    /// calls it for every piece before it writes any.
    ///
    /// The default reads the range in 64-byte steps through
    /// [`read_phys`](GuestPhysMemory::read_phys) (guest RAM can be read and
    /// written alike). An implementation whose check is cheaper than a
    /// read, or with memory that can be read but not written, overrides it.
    fn check_phys(&self, gpa: u64, len: usize) -> Result<(), MemError> {
        let mut probe = [0u8; 64];
        let mut done = 0usize;
        while done < len {
            let n = len.saturating_sub(done).min(probe.len());
            let at = gpa
                .checked_add(done as u64)
                .ok_or(MemError::OutsideRam { gpa })?;
            let buf = probe.get_mut(..n).ok_or(MemError::OutsideRam { gpa })?;
            self.read_phys(at, buf)
                .map_err(|_| MemError::OutsideRam { gpa })?;
            done = done.saturating_add(n);
        }
        Ok(())
    }

    /// The 8-byte paging-structure entry at `gpa` (8-byte aligned, so
    /// inside one page), as one value. The walker reads every entry
    /// through this, once per walk (module docs, "Memory access").
    ///
    /// A VMM whose guest runs on more than one CPU overrides it with one
    /// 8-byte single-copy-atomic load, such as
    /// `AtomicU64::from_ptr(host).load(Ordering::Relaxed)` (one `mov` on
    /// x86-64; an aligned quadword access is atomic: Intel SDM Vol. 3A
    /// §10.1.1, AMD APM Vol. 2 §7.1): another vCPU may write the entry at
    /// the same moment, and a copy made byte by byte could combine half of
    /// the old entry with half of the new one, an entry the guest never
    /// wrote (and it is a data race in Rust's memory model). The default
    /// reads the 8 bytes through [`read_phys`](GuestPhysMemory::read_phys),
    /// which is right only while nothing else writes guest memory (one
    /// vCPU that is not running, host tests).
    fn read_entry(&self, gpa: u64) -> Result<u64, MemError> {
        let mut raw = [0u8; 8];
        self.read_phys(gpa, &mut raw)?;
        Ok(u64::from_le_bytes(raw))
    }
}

/// Which translation a [`PagingMode`] selects (see the module docs' table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingKind {
    /// CR0.PG = 0: linear addresses are guest-physical addresses.
    Disabled,
    /// 4-level paging (IA-32e / long mode): CR0.PG = CR4.PAE = EFER.LMA = 1,
    /// CR4.LA57 = 0.
    FourLevel,
}

/// The guest's paging state, as the VMM reads it from the VMCB or VMCS on
/// the hypercall's exit. Only the bits documented on the constants of this
/// module are used; the rest is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagingMode {
    /// Guest CR0 (PG, WP used).
    pub cr0: u64,
    /// Guest CR3 (the PML4 table's address in bits 51:12 below
    /// MAXPHYADDR; other bits ignored).
    pub cr3: u64,
    /// Guest CR4 (PAE, LA57 used).
    pub cr4: u64,
    /// Guest EFER (LMA, NXE used).
    pub efer: u64,
    /// The guest's MAXPHYADDR in bits (CPUID 8000_0008h, `EAX[7:0]`). Values
    /// are clamped to 12..=52.
    pub maxphyaddr: u8,
}

impl Default for PagingMode {
    /// Paging disabled, MAXPHYADDR 52.
    fn default() -> Self {
        PagingMode::disabled()
    }
}

impl PagingMode {
    /// The state from raw register values, with MAXPHYADDR 52.
    pub const fn new(cr0: u64, cr3: u64, cr4: u64, efer: u64) -> Self {
        PagingMode {
            cr0,
            cr3,
            cr4,
            efer,
            maxphyaddr: DEFAULT_MAXPHYADDR,
        }
    }

    /// Paging disabled (CR0.PG = 0): linear = guest-physical.
    pub const fn disabled() -> Self {
        PagingMode::new(0, 0, 0, 0)
    }

    /// 4-level paging with the PML4 table at `cr3`, CR0.WP = `wp` and
    /// EFER.NXE = `nxe`.
    pub const fn four_level(cr3: u64, wp: bool, nxe: bool) -> Self {
        let cr0 = CR0_PG | if wp { CR0_WP } else { 0 };
        let efer = EFER_LMA | if nxe { EFER_NXE } else { 0 };
        PagingMode::new(cr0, cr3, CR4_PAE, efer)
    }

    /// The same state with another MAXPHYADDR (clamped to 12..=52 when used).
    pub const fn with_maxphyaddr(self, bits: u8) -> Self {
        PagingMode {
            maxphyaddr: bits,
            ..self
        }
    }

    /// Which translation applies, or [`MemError::UnsupportedMode`] for
    /// 32-bit, PAE and 5-level paging.
    #[inline]
    pub const fn kind(&self) -> Result<PagingKind, MemError> {
        if self.cr0 & CR0_PG == 0 {
            Ok(PagingKind::Disabled)
        } else if self.cr4 & CR4_PAE != 0 && self.efer & EFER_LMA != 0 && self.cr4 & CR4_LA57 == 0 {
            Ok(PagingKind::FourLevel)
        } else {
            Err(MemError::UnsupportedMode)
        }
    }

    /// Whether supervisor writes honour read-only pages (CR0.WP).
    pub const fn write_protect(&self) -> bool {
        self.cr0 & CR0_WP != 0
    }

    /// Whether bit 63 of entries is XD rather than reserved (EFER.NXE).
    pub const fn nx_enabled(&self) -> bool {
        self.efer & EFER_NXE != 0
    }

    /// Bits MAXPHYADDR-1:0.
    #[inline]
    fn phys_mask(&self) -> u64 {
        let bits = u32::from(self.maxphyaddr.clamp(12, 52));
        // bits <= 52, so the shift is in range and the result >= 4096.
        1u64.checked_shl(bits)
            .map_or(PHYS_52, |v| v.wrapping_sub(1))
    }
}

/// The kind of access a translation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// A write (else a read).
    pub write: bool,
    /// A user-mode access: the caller runs at CPL 3.
    pub user: bool,
}

impl Access {
    /// A read, by a user (CPL 3) or supervisor caller.
    pub const fn read(user: bool) -> Self {
        Access { write: false, user }
    }

    /// A write, by a user (CPL 3) or supervisor caller.
    pub const fn write(user: bool) -> Self {
        Access { write: true, user }
    }

    /// An access by a caller at privilege level `cpl`: user iff `cpl == 3`.
    pub const fn from_cpl(cpl: u8, write: bool) -> Self {
        Access {
            write,
            user: cpl == 3,
        }
    }
}

/// Read the 8-byte entry `index` of the table at `table`.
fn read_entry<M: GuestPhysMemory + ?Sized>(
    mem: &M,
    table: u64,
    index: u64,
) -> Result<u64, MemError> {
    // `table` is 4 KiB aligned and index < 512: the entry is inside the
    // table, 8-byte aligned. One load: the walk decides on this value only.
    let gpa = table | (index & INDEX_MASK).wrapping_mul(8);
    mem.read_entry(gpa)
}

/// Translate the guest-linear address `la` for `access` under `mode`, giving
/// the guest-physical address.
///
/// See the module documentation for the modes, the checks and their order.
/// Errors: [`MemError::UnsupportedMode`], [`MemError::NonCanonical`],
/// [`MemError::NotPresent`], [`MemError::Reserved`],
/// [`MemError::Supervisor`], [`MemError::ReadOnly`], and
/// [`MemError::OutsideRam`] when a paging structure lies outside guest RAM
/// (the final address is not checked against RAM here: the data access
/// does that).
pub fn translate<M: GuestPhysMemory + ?Sized>(
    mode: &PagingMode,
    mem: &M,
    la: u64,
    access: Access,
) -> Result<u64, MemError> {
    walk(mode, mem, la, access, &mut [NO_TABLE; 4])
}

/// In [`walk`]'s record: a level the walk did not read (above 2^52, so
/// never the address of a table).
const NO_TABLE: u64 = u64::MAX;

/// [`translate`], also recording the guest-physical page of each paging
/// structure the walk read (PML4, PDPT, PD, PT; `tables[i]` is the table
/// of level `4 - i`). Levels the walk did not reach (a large page, paging
/// off, an earlier failure) are left as the caller set them.
///
/// Written out level by level: a walk is what a hypercall on guest memory
/// pays most for after the exit itself, and the loop over a table of
/// levels it replaces cost about four times the instructions.
#[inline]
fn walk<M: GuestPhysMemory + ?Sized>(
    mode: &PagingMode,
    mem: &M,
    la: u64,
    access: Access,
    tables: &mut [u64; 4],
) -> Result<u64, MemError> {
    match mode.kind()? {
        PagingKind::Disabled => return Ok(la),
        PagingKind::FourLevel => {}
    }
    if !GuestAddr(la).is_canonical() {
        return Err(MemError::NonCanonical { addr: la });
    }
    let phys = mode.phys_mask();
    let addr_mask = phys & !OFFSET_4K;
    let mut rsvd = PHYS_52 & !phys;
    if !mode.nx_enabled() {
        rsvd |= PTE_XD;
    }
    let [pml4, pdpt, pd, pt] = tables;
    // Level 4: PS is reserved in a PML4E.
    let e4 = level(mem, pml4, mode.cr3 & addr_mask, la, 39, rsvd | PTE_PS, 4)?;
    // Level 3: a 1 GiB page, or the next table.
    let e3 = level(mem, pdpt, e4 & addr_mask, la, 30, rsvd, 3)?;
    let rights = e4 & e3;
    if e3 & PTE_PS != 0 {
        return leaf(
            mode, la, access, e3, rights, addr_mask, RSVD_1G, OFFSET_1G, 3,
        );
    }
    // Level 2: a 2 MiB page, or the next table.
    let e2 = level(mem, pd, e3 & addr_mask, la, 21, rsvd, 2)?;
    let rights = rights & e2;
    if e2 & PTE_PS != 0 {
        return leaf(
            mode, la, access, e2, rights, addr_mask, RSVD_2M, OFFSET_2M, 2,
        );
    }
    // Level 1: the 4 KiB page.
    let e1 = level(mem, pt, e2 & addr_mask, la, 12, rsvd, 1)?;
    leaf(
        mode,
        la,
        access,
        e1,
        rights & e1,
        addr_mask,
        0,
        OFFSET_4K,
        1,
    )
}

/// Read the entry for `la` (index bits from `shift`) in the table at
/// `table`, recorded in `slot`; it must be present with no bit of `rsvd`
/// set.
#[inline(always)]
fn level<M: GuestPhysMemory + ?Sized>(
    mem: &M,
    slot: &mut u64,
    table: u64,
    la: u64,
    shift: u32,
    rsvd: u64,
    level: u8,
) -> Result<u64, MemError> {
    *slot = table;
    let entry = read_entry(mem, table, la.wrapping_shr(shift) & INDEX_MASK)?;
    if entry & PTE_P == 0 {
        return Err(MemError::NotPresent { addr: la, level });
    }
    if entry & rsvd != 0 {
        return Err(MemError::Reserved { addr: la, level });
    }
    Ok(entry)
}

/// The leaf `entry` at `level` maps a page with offset mask `offset` and
/// reserved bits `rsvd` (beyond those [`level`] checked); `rights` is the
/// AND of every entry on the path (U/S and R/W count).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn leaf(
    mode: &PagingMode,
    la: u64,
    access: Access,
    entry: u64,
    rights: u64,
    addr_mask: u64,
    rsvd: u64,
    offset: u64,
    level: u8,
) -> Result<u64, MemError> {
    if entry & rsvd != 0 {
        return Err(MemError::Reserved { addr: la, level });
    }
    check_rights(mode, la, access, rights & PTE_US != 0, rights & PTE_RW != 0)?;
    Ok((entry & addr_mask & !offset) | (la & offset))
}

/// The access-rights checks of SDM §4.6.1 for data accesses, on the rights
/// accumulated over the walk.
fn check_rights(
    mode: &PagingMode,
    la: u64,
    access: Access,
    user_ok: bool,
    write_ok: bool,
) -> Result<(), MemError> {
    if access.user && !user_ok {
        return Err(MemError::Supervisor { addr: la });
    }
    if access.write && !write_ok && (access.user || mode.write_protect()) {
        return Err(MemError::ReadOnly { addr: la });
    }
    Ok(())
}

/// One run of a linear range that lies in a single 4 KiB page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Guest-linear address of the run's first byte.
    pub la: u64,
    /// Guest-physical address of the run's first byte.
    pub gpa: u64,
    /// Offset of the run within the whole range (index into the buffer).
    pub offset: usize,
    /// Length of the run, 1..=4096 bytes.
    pub len: usize,
}

/// Iterator over the translated [`Piece`]s of a linear range; see [`pieces`].
///
/// Yields `Ok` pieces in address order; at the first failure it yields that
/// `Err` and then ends.
#[derive(Debug)]
pub struct Pieces<'m, M: ?Sized> {
    mode: PagingMode,
    mem: &'m M,
    la: u64,
    len: usize,
    done: usize,
    access: Access,
}

/// The piece of `[la, la + len)` that starts at `offset`, translated.
/// `offset < len` and `la + len - 1` does not wrap (checked by the callers).
fn piece_at<M: GuestPhysMemory + ?Sized>(
    mode: &PagingMode,
    mem: &M,
    la: u64,
    len: usize,
    offset: usize,
    access: Access,
) -> Result<Piece, MemError> {
    let overflow = MemError::RangeOverflow {
        addr: la,
        len: len as u64,
    };
    let at = la.checked_add(offset as u64).ok_or(overflow)?;
    // In 1..=4096: the bytes left on this page.
    let to_page_end = PAGE_SIZE.wrapping_sub(at & OFFSET_4K);
    let left = len.checked_sub(offset).ok_or(overflow)?;
    let chunk = usize::try_from(to_page_end).map_or(left, |p| p.min(left));
    let gpa = translate(mode, mem, at, access)?;
    Ok(Piece {
        la: at,
        gpa,
        offset,
        len: chunk,
    })
}

/// Check that `[la, la + len)` does not wrap past the end of the address
/// space (`len > 0`).
fn check_range(la: u64, len: usize) -> Result<(), MemError> {
    let len64 = len as u64;
    match len64.checked_sub(1).and_then(|l| la.checked_add(l)) {
        Some(_) => Ok(()),
        None => Err(MemError::RangeOverflow {
            addr: la,
            len: len64,
        }),
    }
}

/// The guest-physical runs of the linear range `[la, la + len)` for
/// `access`, split at 4 KiB page boundaries, for a VMM that copies them
/// itself (each run lies within one guest-physical 4 KiB page).
///
/// Fails at once with [`MemError::RangeOverflow`] if the range's last byte
/// would wrap past 2^64. A zero-length range yields nothing. Translation
/// happens lazily, piece by piece, as the iterator advances. A VMM that
/// writes guest memory through these pieces itself must collect and check
/// all of them (and [`GuestPhysMemory::check_phys`] each) before it writes
/// any, to keep docs/ABI.md's check-first rule; [`write_linear`] does.
pub fn pieces<'m, M: GuestPhysMemory + ?Sized>(
    mode: &PagingMode,
    mem: &'m M,
    la: u64,
    len: usize,
    access: Access,
) -> Result<Pieces<'m, M>, MemError> {
    if len != 0 {
        check_range(la, len)?;
    }
    Ok(Pieces {
        mode: *mode,
        mem,
        la,
        len,
        done: 0,
        access,
    })
}

impl<M: GuestPhysMemory + ?Sized> Iterator for Pieces<'_, M> {
    type Item = Result<Piece, MemError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done >= self.len {
            return None;
        }
        match piece_at(
            &self.mode,
            self.mem,
            self.la,
            self.len,
            self.done,
            self.access,
        ) {
            Ok(p) => {
                self.done = self.done.saturating_add(p.len);
                Some(Ok(p))
            }
            Err(e) => {
                self.done = self.len;
                Some(Err(e))
            }
        }
    }
}

impl<M: GuestPhysMemory + ?Sized> FusedIterator for Pieces<'_, M> {}

/// Read `buf.len()` bytes at guest-linear `la` into `buf`, with the
/// privilege of a user (`user`, CPL 3) or supervisor caller.
///
/// The range is split at 4 KiB page boundaries and each piece is translated
/// with [`translate`] and read with [`GuestPhysMemory::read_phys`]. Zero
/// length is `Ok` without touching memory. On error, `buf` holds
/// unspecified bytes.
pub fn read_linear<M: GuestPhysMemory + ?Sized>(
    mode: &PagingMode,
    mem: &M,
    la: u64,
    buf: &mut [u8],
    user: bool,
) -> Result<(), MemError> {
    let len = buf.len();
    for piece in pieces(mode, mem, la, len, Access::read(user))? {
        let p = piece?;
        let end = p.offset.saturating_add(p.len);
        let dst = buf.get_mut(p.offset..end).ok_or(MemError::RangeOverflow {
            addr: la,
            len: len as u64,
        })?;
        mem.read_phys(p.gpa, dst)?;
    }
    Ok(())
}

/// How many pieces [`write_linear`] and [`write_linear_all`] keep the
/// translations of, from their check to their writes (64 pieces cover any
/// single range up to 252 KiB + 1 byte).
pub const WRITE_KEPT_PIECES: usize = 64;

/// Write `data` at guest-linear `la`, with the privilege of a user (`user`,
/// CPL 3) or supervisor caller: check first, then write (module docs).
///
/// Every piece of the range is translated and checked (present, writable
/// at the caller's privilege, inside guest RAM through
/// [`GuestPhysMemory::check_phys`]) before any byte is written, whatever
/// the length: on any error nothing is written. The bytes then go where
/// those translations said, even if the data overwrites the guest's own
/// paging structures; a range of more than [`WRITE_KEPT_PIECES`] pieces
/// whose data would land on a paging structure that translates the range
/// itself is refused with [`MemError::OverwritesOwnTables`], also before
/// anything is written. Zero length is `Ok` without touching memory.
/// It is [`write_linear_all`] with one range.
pub fn write_linear<M: GuestPhysMemory + ?Sized>(
    mode: &PagingMode,
    mem: &mut M,
    la: u64,
    data: &[u8],
    user: bool,
) -> Result<(), MemError> {
    write_linear_all(mode, mem, &[(GuestAddr(la), data)], user)
}

/// Write several ranges, in order, as one: every piece of every range is
/// translated and checked before the first byte of the first range is
/// written, so on any error nothing at all is written (docs/ABI.md,
/// "Check first, then write", for a handler with several buffers).
///
/// Ranges may overlap: a later one's bytes win. When all of them together
/// have at most [`WRITE_KEPT_PIECES`] pieces, the bytes go where the check
/// translated them. Beyond that, the pieces are translated again while
/// written, and a write whose data would land on a paging structure that
/// translates any of its ranges is refused first
/// ([`MemError::OverwritesOwnTables`]); that costs a bounded number of
/// walks per piece (four while the ranges use at most 256 distinct
/// paging-structure pages, that is up to 512 MiB of 4 KiB pages; one more
/// pair of passes for every 256 more). Errors name the first failing piece
/// in range order; a range that wraps past 2^64 is
/// [`MemError::RangeOverflow`] before anything else.
pub fn write_linear_all<M: GuestPhysMemory + ?Sized>(
    mode: &PagingMode,
    mem: &mut M,
    writes: &[(GuestAddr, &[u8])],
    user: bool,
) -> Result<(), MemError> {
    let access = Access::write(user);
    for &(la, data) in writes {
        if !data.is_empty() {
            check_range(la.0, data.len())?;
        }
    }
    // Check: every piece of every range, whatever the length.
    let none = Piece {
        la: 0,
        gpa: 0,
        offset: 0,
        len: 0,
    };
    let mut kept = [(0usize, none); WRITE_KEPT_PIECES];
    let mut count = 0usize;
    for (w, &(la, data)) in writes.iter().enumerate() {
        for piece in pieces(mode, &*mem, la.0, data.len(), access)? {
            let p = piece?;
            mem.check_phys(p.gpa, p.len)?;
            if let Some(slot) = kept.get_mut(count) {
                *slot = (w, p);
            }
            count = count.saturating_add(1);
        }
    }
    if let Some(kept) = kept.get(..count) {
        // Found by fuzzing: translating again after each piece let a write
        // that overwrote the guest's page tables fail half-way or go
        // elsewhere than checked.
        for &(w, p) in kept {
            let (la, data) = writes.get(w).copied().unwrap_or((GuestAddr(0), &[]));
            mem.write_phys(p.gpa, piece_data(la.0, data, &p)?)?;
        }
        return Ok(());
    }
    // Many pieces: they are translated again while written. That gives
    // the checked answers as long as no piece's data lands on a paging
    // structure of the ranges' walks; refuse the write otherwise.
    refuse_writes_over_own_tables(mode, &*mem, writes, access)?;
    for &(la, data) in writes {
        let mut done = 0usize;
        while done < data.len() {
            let p = piece_at(mode, &*mem, la.0, data.len(), done, access)?;
            mem.write_phys(p.gpa, piece_data(la.0, data, &p)?)?;
            done = p.offset.saturating_add(p.len);
        }
    }
    Ok(())
}

/// The bytes of `data` (written at `la`) that piece `p` covers.
fn piece_data<'d>(la: u64, data: &'d [u8], p: &Piece) -> Result<&'d [u8], MemError> {
    data.get(p.offset..p.offset.saturating_add(p.len))
        .ok_or(MemError::RangeOverflow {
            addr: la,
            len: data.len() as u64,
        })
}

/// The paging structures the walk of the piece at `offset` reads.
fn piece_tables<M: GuestPhysMemory + ?Sized>(
    mode: &PagingMode,
    mem: &M,
    la: u64,
    offset: usize,
    access: Access,
) -> Result<[u64; 4], MemError> {
    let at = la
        .checked_add(offset as u64)
        .ok_or(MemError::RangeOverflow {
            addr: la,
            len: offset as u64,
        })?;
    let mut tables = [NO_TABLE; 4];
    walk(mode, mem, at, access, &mut tables)?;
    Ok(tables)
}

/// The offsets of the pieces of `[la, la + len)`: 0, then each 4 KiB
/// linear-page boundary.
fn piece_offsets(la: u64, len: usize) -> impl Iterator<Item = usize> {
    // In 1..=4096: the bytes of the first piece (if the range is longer).
    let first = usize::try_from(PAGE_SIZE.wrapping_sub(la & OFFSET_4K)).unwrap_or(usize::MAX);
    (0usize..)
        .map(move |k| match k.checked_sub(1) {
            None => 0,
            Some(j) => first.saturating_add(j.saturating_mul(PAGE_SIZE as usize)),
        })
        .take_while(move |&o| o < len)
}

/// Every piece of `writes`, in order, as (its index in that order, the
/// range's address and length, the piece's offset).
fn all_pieces<'w>(
    writes: &'w [(GuestAddr, &[u8])],
) -> impl Iterator<Item = (usize, u64, usize, usize)> + 'w {
    writes
        .iter()
        .flat_map(|&(la, data)| piece_offsets(la.0, data.len()).map(move |o| (la.0, data.len(), o)))
        .enumerate()
        .map(|(k, (la, len, o))| (k, la, len, o))
}

/// How many paging-structure pages one pass of
/// [`refuse_writes_over_own_tables`] compares the data frames with.
const TABLE_BLOCK: usize = 256;

/// The sorted, distinct paging-structure pages above a floor that one
/// pass compares with: the [`TABLE_BLOCK`] smallest of them.
struct TableBlock {
    pages: [u64; TABLE_BLOCK],
    used: usize,
    /// Some page above the block's largest was left out (another pass).
    more: bool,
}

impl TableBlock {
    fn insert(&mut self, page: u64) {
        let used = self.used;
        let Err(pos) = self.pages.get(..used).unwrap_or(&[]).binary_search(&page) else {
            return;
        };
        if used < TABLE_BLOCK {
            self.used = used.saturating_add(1);
        } else {
            // Full: `page` takes the place of the largest (or is left out,
            // if it is larger), which a later pass compares with.
            self.more = true;
        }
        if let Some(tail) = self.pages.get_mut(pos..self.used) {
            tail.rotate_right(1);
            if let Some(first) = tail.first_mut() {
                *first = page;
            }
        }
    }

    fn contains(&self, page: u64) -> bool {
        self.pages
            .get(..self.used)
            .is_some_and(|p| p.binary_search(&page).is_ok())
    }

    fn largest(&self) -> Option<u64> {
        self.pages.get(..self.used).and_then(|p| p.last().copied())
    }
}

/// [`MemError::OverwritesOwnTables`], naming the first piece in order, if
/// the data of some piece of the (already checked) `writes` lands on a
/// guest-physical page that holds a paging structure the walk of any of
/// their pieces reads; nothing is written.
///
/// Each pass walks every piece twice: once to gather the smallest
/// [`TABLE_BLOCK`] paging-structure pages not yet compared, once to
/// compare every piece's data frame with them (a binary search). The
/// pieces of one 2 MiB-aligned linear region share their paging
/// structures, so `n` pieces use at most about `n / 512 + 4` distinct
/// pages: one pass suffices up to 512 MiB, and the work stays linear in
/// `n` where a filter with a search of every piece on each false positive
/// (the guest chooses its frames) was quadratic (issue 24, finding 3).
fn refuse_writes_over_own_tables<M: GuestPhysMemory + ?Sized>(
    mode: &PagingMode,
    mem: &M,
    writes: &[(GuestAddr, &[u8])],
    access: Access,
) -> Result<(), MemError> {
    // The first offending piece found so far: (its index, its address).
    let mut first: Option<(usize, u64)> = None;
    let mut floor: Option<u64> = None;
    loop {
        let mut block = TableBlock {
            pages: [0; TABLE_BLOCK],
            used: 0,
            more: false,
        };
        let mut previous = [NO_TABLE; 4];
        for (_, la, _, offset) in all_pieces(writes) {
            let tables = piece_tables(mode, mem, la, offset, access)?;
            if tables == previous {
                continue;
            }
            previous = tables;
            for t in tables {
                if t != NO_TABLE && floor.is_none_or(|f| t > f) {
                    block.insert(t);
                }
            }
        }
        let Some(largest) = block.largest() else {
            break;
        };
        for (k, la, len, offset) in all_pieces(writes) {
            if first.is_some_and(|(f, _)| k >= f) {
                break;
            }
            let p = piece_at(mode, mem, la, len, offset, access)?;
            if block.contains(p.gpa & !OFFSET_4K) {
                first = Some((k, p.la));
            }
        }
        if !block.more {
            break;
        }
        floor = Some(largest);
    }
    match first {
        Some((_, addr)) => Err(MemError::OverwritesOwnTables { addr }),
        None => Ok(()),
    }
}
