//! A mock vCPU with mock guest memory, for testing handlers on the host.
//!
//! Memory is a set of 4 KiB pages, each mapped present with a user and a
//! writable bit, so tests can exercise every [`MemError`] a real page walk
//! gives: unmapped pages, supervisor pages seen from ring 3, read-only pages,
//! non-canonical addresses and ranges that overflow.
//!
//! ```
//! use vmmcall::mock::MockVcpu;
//! use vmmcall::{dispatch, GuestAddr, Registry, HANDLERS};
//!
//! let mut vcpu = MockVcpu::new();
//! vcpu.map(0x1000, true, true);
//! vcpu.poke(0x1000, b"no-such-call\0");
//! vcpu.regs.rax = 0; // get_vmmcall_number
//! vcpu.regs.rbx = 0x1000;
//! let registry = Registry::global().unwrap();
//! dispatch(registry, &mut vcpu);
//! assert_eq!(vcpu.regs.rax, 0); // unknown name
//! ```

extern crate alloc;

use crate::context::{MemError, Vcpu};
use crate::regs::{Gpr, GuestRegs, Registers};
use crate::GuestAddr;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

const PAGE: u64 = 4096;

#[derive(Clone)]
struct Page {
    user: bool,
    writable: bool,
    bytes: Vec<u8>,
}

/// A vCPU whose guest memory is a sparse map of 4 KiB pages.
///
/// It records every guest byte read through [`Vcpu::read_linear`]: the
/// read-once detector of docs/ABI.md ("What read once means for guest
/// memory"). After a call, [`byte_read_twice`](MockVcpu::byte_read_twice)
/// names a byte that the call fetched more than once, if any; a test
/// dispatches each call on a fresh (or [cleared](MockVcpu::clear_reads))
/// vCPU and asserts it is `None`.
///
/// ```
/// use vmmcall::mock::MockVcpu;
/// use vmmcall::{Caller, GuestAddr};
///
/// let mut vcpu = MockVcpu::new();
/// vcpu.map(0x1000, true, true);
/// let mut cx = Caller::new(&mut vcpu, 1);
/// let (mut a, mut b) = ([0u8; 8], [0u8; 4]);
/// cx.read(GuestAddr(0x1000), &mut a).unwrap();
/// cx.read(GuestAddr(0x1008), &mut b).unwrap();
/// assert_eq!(vcpu.byte_read_twice(), None);
/// // A second fetch of byte 0x1006, as a handler that validates a value
/// // and then reads it again to use it would do.
/// Caller::new(&mut vcpu, 1).read(GuestAddr(0x1006), &mut b).unwrap();
/// assert_eq!(vcpu.byte_read_twice(), Some(0x1006));
/// ```
#[derive(Clone, Default)]
pub struct MockVcpu {
    /// The guest's registers; set them before [`crate::dispatch()`].
    pub regs: GuestRegs,
    /// The caller's privilege level.
    pub cpl: u8,
    pages: BTreeMap<u64, Page>,
    /// Number of `read_linear` and `read_phys` calls, to check that
    /// nothing reads too far.
    pub reads: usize,
    /// Long calls: the continuations and the interrupts the test makes
    /// pending ([`MockStepper`]); `None` runs long calls in one exit.
    pub stepper: Option<MockStepper>,
    /// Every successful read since the last clear: (address, length).
    read_log: Vec<(u64, usize)>,
}

/// The mock VMM's side of long calls ([`crate::step`]): continuations, a
/// RIP, and a script of answers to "is an interrupt pending?".
#[derive(Clone, Debug, Default)]
pub struct MockStepper {
    /// This vCPU's continuation state.
    pub continuations: crate::step::Continuations,
    /// What the call's site is (change it to make a new call).
    pub site: crate::step::Site,
    /// Answers to the next interrupt checks, in order (then `false`).
    pub interrupts: alloc::collections::VecDeque<bool>,
    /// Interrupt checks made so far.
    pub checks: u64,
}

impl crate::step::Stepper for MockStepper {
    fn continuations(&mut self) -> &mut crate::step::Continuations {
        &mut self.continuations
    }
    fn site(&mut self) -> crate::step::Site {
        self.site
    }
    fn interrupt_pending(&mut self) -> bool {
        self.checks += 1;
        self.interrupts.pop_front().unwrap_or(false)
    }
}

impl MockVcpu {
    /// A ring-0 vCPU with no memory mapped.
    pub fn new() -> Self {
        MockVcpu::default()
    }

    /// Map the zero-filled page containing `addr`.
    pub fn map(&mut self, addr: u64, user: bool, writable: bool) -> &mut Self {
        self.pages.insert(
            addr & !(PAGE - 1),
            Page {
                user,
                writable,
                bytes: alloc::vec![0; PAGE as usize],
            },
        );
        self
    }

    /// Unmap the page containing `addr`.
    pub fn unmap(&mut self, addr: u64) -> &mut Self {
        self.pages.remove(&(addr & !(PAGE - 1)));
        self
    }

    /// Write bytes ignoring permissions (test set-up). Panics if a page is
    /// not mapped: this is test code.
    pub fn poke(&mut self, addr: u64, data: &[u8]) -> &mut Self {
        for (i, &b) in data.iter().enumerate() {
            let a = addr + i as u64;
            let page = self
                .pages
                .get_mut(&(a & !(PAGE - 1)))
                .expect("poke: page not mapped");
            page.bytes[(a % PAGE) as usize] = b;
        }
        self
    }

    /// Read bytes ignoring permissions (test checks). Panics if unmapped.
    pub fn peek(&self, addr: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| {
                let a = addr + i;
                self.pages
                    .get(&(a & !(PAGE - 1)))
                    .expect("peek: page not mapped")
                    .bytes[(a % PAGE) as usize]
            })
            .collect()
    }

    /// Every range of guest memory read since the vCPU was made or
    /// [`clear_reads`](MockVcpu::clear_reads) was called, in order:
    /// (address, length). A read that failed fetched nothing here.
    pub fn read_log(&self) -> &[(u64, usize)] {
        &self.read_log
    }

    /// Forget the reads recorded so far (before the next call).
    pub fn clear_reads(&mut self) -> &mut Self {
        self.read_log.clear();
        self
    }

    /// The lowest guest byte that two recorded reads both fetched, if
    /// any: a double fetch, when the record covers one call.
    pub fn byte_read_twice(&self) -> Option<u64> {
        // As [start, end) in u128: a read may end at 2^64.
        let mut ranges: Vec<(u128, u128)> = self
            .read_log
            .iter()
            .filter(|&&(_, len)| len > 0)
            .map(|&(a, len)| (u128::from(a), u128::from(a) + len as u128))
            .collect();
        ranges.sort_unstable();
        let mut end = 0u128;
        let mut twice: Option<u128> = None;
        for (i, &(start, stop)) in ranges.iter().enumerate() {
            if i > 0 && start < end {
                twice = Some(twice.map_or(start, |t| t.min(start)));
            }
            end = end.max(stop);
        }
        twice.map(|t| t as u64)
    }

    fn check(&self, addr: u64, len: usize, write: bool) -> Result<(), MemError> {
        if len == 0 {
            return Ok(());
        }
        let last = addr
            .checked_add(len as u64 - 1)
            .ok_or(MemError::RangeOverflow {
                addr,
                len: len as u64,
            })?;
        let mut page = addr & !(PAGE - 1);
        loop {
            let at = page.max(addr);
            if !GuestAddr(at).is_canonical() {
                return Err(MemError::NonCanonical { addr: at });
            }
            let p = self
                .pages
                .get(&page)
                .ok_or(MemError::NotPresent { addr: at, level: 1 })?;
            if self.cpl == 3 && !p.user {
                return Err(MemError::Supervisor { addr: at });
            }
            if write && !p.writable {
                return Err(MemError::ReadOnly { addr: at });
            }
            if page >= last & !(PAGE - 1) {
                return Ok(());
            }
            page += PAGE;
        }
    }
}

impl MockVcpu {
    /// `Ok` if `[gpa, gpa + len)` lies in one mapped page: the contract of
    /// [`Vcpu::read_phys`] (one page) is checked, so that a caller that
    /// breaks it fails its tests.
    fn ram(&self, gpa: u64, len: usize) -> Result<(), MemError> {
        let page = gpa & !(PAGE - 1);
        let one_page = (gpa % PAGE)
            .checked_add(len as u64)
            .is_some_and(|end| end <= PAGE);
        if one_page && self.pages.contains_key(&page) {
            Ok(())
        } else {
            Err(MemError::OutsideRam { gpa })
        }
    }
}

impl Registers for MockVcpu {
    #[inline]
    fn gpr(&self, reg: Gpr) -> u64 {
        self.regs.gpr(reg)
    }

    #[inline]
    fn set_gpr(&mut self, reg: Gpr, value: u64) {
        self.regs.set_gpr(reg, value);
    }
}

impl Vcpu for MockVcpu {
    fn cpl(&self) -> u8 {
        self.cpl
    }

    fn read_linear(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), MemError> {
        self.reads += 1;
        self.check(addr.0, buf.len(), false)?;
        let bytes = self.peek(addr.0, buf.len());
        buf.copy_from_slice(&bytes);
        self.read_log.push((addr.0, buf.len()));
        Ok(())
    }

    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError> {
        self.check(addr.0, data.len(), true)?;
        self.poke(addr.0, data);
        Ok(())
    }

    fn stepper(&mut self) -> Option<&mut dyn crate::step::Stepper> {
        match &mut self.stepper {
            Some(s) => Some(s),
            None => None,
        }
    }

    /// Linear is guest-physical here: the address itself, once the page
    /// allows the access at [`cpl`](MockVcpu::cpl).
    fn translate(&mut self, addr: GuestAddr, write: bool) -> Result<u64, MemError> {
        self.check(addr.0, 1, write)?;
        Ok(addr.0)
    }

    /// Mapped pages are the guest RAM; reads are logged as linear ones.
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.reads += 1;
        self.ram(gpa, buf.len())?;
        let bytes = self.peek(gpa, buf.len());
        buf.copy_from_slice(&bytes);
        self.read_log.push((gpa, buf.len()));
        Ok(())
    }

    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.ram(gpa, data.len())?;
        self.poke(gpa, data);
        Ok(())
    }

    fn check_phys(&mut self, gpa: u64, len: usize) -> Result<(), MemError> {
        self.ram(gpa, len)
    }

    fn write_linear_all(&mut self, writes: &[(GuestAddr, &[u8])]) -> Result<(), MemError> {
        for &(addr, data) in writes {
            self.check(addr.0, data.len(), true)?;
        }
        for &(addr, data) in writes {
            self.poke(addr.0, data);
        }
        Ok(())
    }
}
