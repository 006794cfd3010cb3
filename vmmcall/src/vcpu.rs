//! [`GuestVcpu`]: a [`Vcpu`] from what every VMM has at an exit.
//!
//! A hypercall needs four things of the vCPU that exited: its registers, its
//! privilege level, its paging mode and its guest-physical memory. A VMM
//! wraps them in a `GuestVcpu` for the duration of one exit and hands it to
//! [`vmexit::handle_hypercall`](https://docs.rs/vmexit) or
//! [`dispatch`](fn@crate::dispatch); nothing is copied:
//!
//! - the registers are any [`Registers`]: `&mut GuestRegs`, or a type of the
//!   VMM's that borrows its own save area;
//! - the CPL is what the VMCB (SVM: `CPL`) or the VMCS (VMX: `SS` access
//!   rights, DPL) says;
//! - the paging mode is the guest's CR0, CR3, CR4 and EFER and its
//!   MAXPHYADDR, a [`PagingMode`];
//! - guest-physical memory is any [`GuestPhysMemory`]: the VMM's view of
//!   guest RAM through its nested page tables.
//!
//! Guest-linear addresses then go through the guest's own page tables with
//! the caller's privilege ([`crate::paging`]) and then through guest RAM.
//! With paging off, a caller at CPL 1-3 can name no memory at all (see
//! [`GuestVcpu`]).
//!
//! ```
//! use vmmcall::paging::{GuestPhysMemory, PagingMode};
//! use vmmcall::{GuestAddr, GuestRegs, GuestVcpu, MemError, Registers, Vcpu};
//!
//! struct Ram(Vec<u8>);
//! impl GuestPhysMemory for Ram {
//!     fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
//!         let at = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
//!         let src = at.checked_add(buf.len()).and_then(|end| self.0.get(at..end));
//!         buf.copy_from_slice(src.ok_or(MemError::OutsideRam { gpa })?);
//!         Ok(())
//!     }
//!     fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
//!         let at = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
//!         let dst = at.checked_add(data.len()).and_then(|end| self.0.get_mut(at..end));
//!         dst.ok_or(MemError::OutsideRam { gpa })?.copy_from_slice(data);
//!         Ok(())
//!     }
//! }
//!
//! let mut regs = GuestRegs { rax: 7, ..GuestRegs::default() };
//! let mut ram = Ram(vec![0; 0x2000]);
//! // Paging off, CPL 0: guest-linear = guest-physical.
//! let mut vcpu = GuestVcpu::new(&mut regs, &mut ram, 0, PagingMode::disabled());
//! vcpu.write_linear(GuestAddr(0x1000), b"hi").unwrap();
//! vcpu.set_rax(8);
//! assert_eq!(regs.rax, 8);
//! assert_eq!(&ram.0[0x1000..0x1002], b"hi");
//! ```

use crate::abi::MAX_ARGS;
use crate::paging::{self, GuestPhysMemory, PagingMode, CR0_PG};
use crate::regs::{Gpr, GuestRegs, Registers};
use crate::step::Stepper;
use crate::{GuestAddr, MemError, Vcpu};
use core::cell::{Cell, OnceCell};

/// Where a [`GuestVcpu`] made with [`GuestVcpu::lazy`] reads the caller's
/// CPL and the guest's paging mode from, the first time it needs them.
///
/// Most hypercalls need neither: a `user` handler that takes only
/// register arguments runs without the CPL (any CPL may call it) and
/// without the paging mode (it touches no guest memory). A VMM whose
/// reads cost something (VMREAD on VMX) implements this on a reference
/// to its vCPU state and pays for them only when a handler asks for the
/// CPL, reads or writes guest memory, or the dispatcher checks the
/// privilege of a kernel-only handler. Each is read at most once per
/// `GuestVcpu`, and both describe the guest as of the exit: nothing
/// changes them while the VMM handles it.
pub trait VcpuState {
    /// The caller's privilege level (only the low two bits count): SVM
    /// VMCB `CPL`, VMX the DPL of the `SS` access rights (AMD APM Vol. 2
    /// §15.5.1; Intel SDM Vol. 3C §25.4.1).
    fn cpl(&self) -> u8;
    /// The guest's CR0, CR3, CR4, EFER and MAXPHYADDR.
    fn paging(&self) -> PagingMode;
    /// What the VMM provides for long calls on this vCPU
    /// ([`crate::step`]), reached through the state a [`GuestVcpu`]
    /// already holds, so that a VMM with steps builds nothing more per
    /// exit ([`GuestVcpu`]'s [`Vcpu::stepper`] asks here). `None`, the
    /// default: long calls run to their end in one exit.
    #[inline]
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        None
    }
    /// The calling vCPU's id in its VM ([`Vcpu::vcpu_id`], which a
    /// [`GuestVcpu`] answers from here), carried by the state the VMM
    /// hands over anyway, so that a VMM need not wrap the vCPU in
    /// [`InVm`](crate::InVm) on every exit only for it. 0, the default:
    /// one vCPU.
    #[inline]
    fn vcpu_id(&self) -> u32 {
        0
    }
}

/// Shared: CPL, paging and the id (a stepper needs `&mut`).
impl<S: VcpuState + ?Sized> VcpuState for &S {
    #[inline]
    fn cpl(&self) -> u8 {
        (**self).cpl()
    }
    #[inline]
    fn paging(&self) -> PagingMode {
        (**self).paging()
    }
    #[inline]
    fn vcpu_id(&self) -> u32 {
        (**self).vcpu_id()
    }
}

/// Borrowed mutably: the stepper too.
impl<S: VcpuState + ?Sized> VcpuState for &mut S {
    #[inline]
    fn cpl(&self) -> u8 {
        (**self).cpl()
    }
    #[inline]
    fn paging(&self) -> PagingMode {
        (**self).paging()
    }
    #[inline]
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        (**self).stepper()
    }
    #[inline]
    fn vcpu_id(&self) -> u32 {
        (**self).vcpu_id()
    }
}

/// A CPL and paging mode already read: the state of a [`GuestVcpu`]
/// made with [`GuestVcpu::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The caller's privilege level.
    pub cpl: u8,
    /// The guest's paging mode.
    pub paging: PagingMode,
}

impl VcpuState for Known {
    #[inline]
    fn cpl(&self) -> u8 {
        self.cpl
    }
    #[inline]
    fn paging(&self) -> PagingMode {
        self.paging
    }
}

/// No CPL read yet (a real one has only its low two bits set).
const CPL_UNREAD: u8 = u8::MAX;

/// The vCPU at one exit: registers `R`, guest-physical memory `M`, and the
/// caller's CPL and the guest's [`PagingMode`], given ([`GuestVcpu::new`])
/// or read on first use from `S` ([`GuestVcpu::lazy`]). See the
/// [module docs](self).
///
/// With paging off (real mode, or protected mode without paging) there are
/// no user pages: every address counts as supervisor-only, so a caller at
/// CPL 1-3 (v8086 mode included) gets [`MemError::Supervisor`] for any
/// address. Otherwise a guest could turn paging off (on SVM the guest owns
/// CR0) and let ring 3 reach any guest-physical address through a `user`
/// handler.
#[derive(Debug)]
pub struct GuestVcpu<R, M, S = Known> {
    regs: R,
    mem: M,
    state: S,
    /// The CPL (low two bits), or [`CPL_UNREAD`].
    cpl: Cell<u8>,
    paging: OnceCell<PagingMode>,
}

impl<R: Registers, M: GuestPhysMemory> GuestVcpu<R, M> {
    /// Wrap the state of one exit. `cpl` is the caller's privilege level
    /// (only its low two bits count); `paging` is the guest's CR0, CR3,
    /// CR4, EFER and MAXPHYADDR as of the exit:
    ///
    /// ```
    /// # let (cr0, cr3, cr4, efer) = (0u64, 0u64, 0u64, 0u64);
    /// let paging = vmmcall::paging::PagingMode {
    ///     cr0, cr3, cr4, efer,
    ///     // CPUID 8000_0008h EAX[7:0], as the guest sees it.
    ///     maxphyaddr: vmmcall::cpuid::maxphyaddr(0x3030),
    /// };
    /// # let _ = paging;
    /// ```
    ///
    /// [`GuestVcpu::lazy`] reads both only when they are needed.
    #[inline]
    pub fn new(regs: R, mem: M, cpl: u8, paging: PagingMode) -> Self {
        // Known values, read through the same lazy path (a field load).
        GuestVcpu::lazy(
            regs,
            mem,
            Known {
                cpl: cpl & 3,
                paging,
            },
        )
    }
}

impl<R: Registers, M: GuestPhysMemory, S: VcpuState> GuestVcpu<R, M, S> {
    /// Wrap the state of one exit, reading the CPL and the paging mode from
    /// `state` only when they are first needed (see [`VcpuState`]):
    ///
    /// ```
    /// use std::cell::Cell;
    /// use vmmcall::paging::PagingMode;
    /// use vmmcall::vcpu::VcpuState;
    /// use vmmcall::{GuestRegs, GuestVcpu, Vcpu};
    /// # use vmmcall::{paging::GuestPhysMemory, MemError};
    /// # struct NoRam;
    /// # impl GuestPhysMemory for NoRam {
    /// #     fn read_phys(&self, gpa: u64, _: &mut [u8]) -> Result<(), MemError> { Err(MemError::OutsideRam { gpa }) }
    /// #     fn write_phys(&mut self, gpa: u64, _: &[u8]) -> Result<(), MemError> { Err(MemError::OutsideRam { gpa }) }
    /// # }
    ///
    /// /// Counts its reads, as a VMCS would cost VMREADs.
    /// struct Vmcs(Cell<u32>);
    /// impl VcpuState for Vmcs {
    ///     fn cpl(&self) -> u8 { self.0.set(self.0.get() + 1); 3 }
    ///     fn paging(&self) -> PagingMode { self.0.set(self.0.get() + 1); PagingMode::disabled() }
    /// }
    ///
    /// let vmcs = Vmcs(Cell::new(0));
    /// let mut regs = GuestRegs::default();
    /// let vcpu = GuestVcpu::lazy(&mut regs, NoRam, &vmcs);
    /// assert_eq!(vmcs.0.get(), 0, "nothing read yet");
    /// assert_eq!((vcpu.cpl(), vcpu.cpl()), (3, 3));
    /// assert_eq!(vmcs.0.get(), 1, "read once");
    /// ```
    #[inline]
    pub fn lazy(regs: R, mem: M, state: S) -> Self {
        GuestVcpu {
            regs,
            mem,
            state,
            cpl: Cell::new(CPL_UNREAD),
            paging: OnceCell::new(),
        }
    }

    /// The registers.
    pub fn regs(&self) -> &R {
        &self.regs
    }

    /// The registers, mutably.
    pub fn regs_mut(&mut self) -> &mut R {
        &mut self.regs
    }

    /// The guest-physical memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// The guest's paging mode (read from the [`VcpuState`] now if it was
    /// not yet).
    pub fn paging(&self) -> &PagingMode {
        self.paging.get_or_init(|| self.state.paging())
    }

    /// The parts back.
    pub fn into_parts(self) -> (R, M) {
        (self.regs, self.mem)
    }

    /// The CPL, read from the [`VcpuState`] the first time.
    #[inline]
    fn current_cpl(&self) -> u8 {
        match self.cpl.get() {
            CPL_UNREAD => self.read_cpl(),
            cpl => cpl,
        }
    }

    #[cold]
    #[inline(never)]
    fn read_cpl(&self) -> u8 {
        let cpl = self.state.cpl() & 3;
        self.cpl.set(cpl);
        cpl
    }

    fn check_paging_off(&self, addr: GuestAddr) -> Result<(), MemError> {
        if self.current_cpl() != 0 && self.paging().cr0 & CR0_PG == 0 {
            Err(MemError::Supervisor { addr: addr.0 })
        } else {
            Ok(())
        }
    }
}

impl<R: Registers, M, S> Registers for GuestVcpu<R, M, S> {
    #[inline]
    fn gpr(&self, reg: Gpr) -> u64 {
        self.regs.gpr(reg)
    }
    #[inline]
    fn set_gpr(&mut self, reg: Gpr, value: u64) {
        self.regs.set_gpr(reg, value);
    }
    #[inline]
    fn rax(&self) -> u64 {
        self.regs.rax()
    }
    #[inline]
    fn set_rax(&mut self, value: u64) {
        self.regs.set_rax(value);
    }
    #[inline]
    fn args(&self) -> [u64; MAX_ARGS] {
        self.regs.args()
    }
    fn snapshot(&self) -> GuestRegs {
        self.regs.snapshot()
    }
}

impl<R: Registers, M: GuestPhysMemory, S: VcpuState> Vcpu for GuestVcpu<R, M, S> {
    #[inline]
    fn cpl(&self) -> u8 {
        self.current_cpl()
    }

    /// The [`VcpuState`]'s ([`VcpuState::stepper`]).
    #[inline]
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        self.state.stepper()
    }

    /// The [`VcpuState`]'s ([`VcpuState::vcpu_id`]).
    #[inline]
    fn vcpu_id(&self) -> u32 {
        self.state.vcpu_id()
    }

    fn read_linear(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), MemError> {
        self.check_paging_off(addr)?;
        let user = self.current_cpl() == 3;
        let paging = *self.paging();
        paging::read_linear(&paging, &self.mem, addr.0, buf, user)
    }

    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError> {
        self.check_paging_off(addr)?;
        let user = self.current_cpl() == 3;
        let paging = *self.paging();
        paging::write_linear(&paging, &mut self.mem, addr.0, data, user)
    }

    fn translate(&mut self, addr: GuestAddr, write: bool) -> Result<u64, MemError> {
        self.check_paging_off(addr)?;
        let access = paging::Access {
            write,
            user: self.current_cpl() == 3,
        };
        paging::translate(self.paging(), &self.mem, addr.0, access)
    }

    #[inline]
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.mem.read_phys(gpa, buf)
    }

    #[inline]
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.mem.write_phys(gpa, data)
    }

    #[inline]
    fn check_phys(&mut self, gpa: u64, len: usize) -> Result<(), MemError> {
        self.mem.check_phys(gpa, len)
    }

    fn write_linear_all(&mut self, writes: &[(GuestAddr, &[u8])]) -> Result<(), MemError> {
        for &(addr, _) in writes {
            self.check_paging_off(addr)?;
        }
        let user = self.current_cpl() == 3;
        let paging = *self.paging();
        paging::write_linear_all(&paging, &mut self.mem, writes, user)
    }
}

/// Guest-physical memory through a mutable reference, so that a VMM can
/// lend its memory object to a [`GuestVcpu`] for one exit.
impl<M: GuestPhysMemory + ?Sized> GuestPhysMemory for &mut M {
    #[inline]
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read_phys(gpa, buf)
    }
    #[inline]
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        (**self).write_phys(gpa, data)
    }
    #[inline]
    fn check_phys(&self, gpa: u64, len: usize) -> Result<(), MemError> {
        (**self).check_phys(gpa, len)
    }
    #[inline]
    fn read_entry(&self, gpa: u64) -> Result<u64, MemError> {
        (**self).read_entry(gpa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate alloc;
    use alloc::vec::Vec;

    struct Ram(Vec<u8>);

    impl GuestPhysMemory for Ram {
        fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
            let at = gpa as usize;
            buf.copy_from_slice(
                self.0
                    .get(at..at + buf.len())
                    .ok_or(MemError::OutsideRam { gpa })?,
            );
            Ok(())
        }
        fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
            let at = gpa as usize;
            self.0
                .get_mut(at..at + data.len())
                .ok_or(MemError::OutsideRam { gpa })?
                .copy_from_slice(data);
            Ok(())
        }
    }

    #[test]
    fn paging_off_gives_ring_3_no_memory() {
        let mut ram = Ram(alloc::vec![0xAB; 0x2000]);
        let mut regs = GuestRegs::default();
        let mut buf = [0u8; 4];
        // CPL 0, paging off (CR0.PE only): linear = guest-physical.
        let off = PagingMode {
            cr0: 0x11,
            ..PagingMode::disabled()
        };
        let mut v = GuestVcpu::new(&mut regs, &mut ram, 0, off);
        assert_eq!(v.read_linear(GuestAddr(0x1000), &mut buf), Ok(()));
        assert_eq!(buf, [0xAB; 4]);
        // CPL 1, 2, 3 (v8086 included) with paging off: nothing.
        for cpl in 1..=3 {
            let mut v = GuestVcpu::new(&mut regs, &mut ram, cpl, off);
            assert_eq!(
                v.read_linear(GuestAddr(0x1000), &mut buf),
                Err(MemError::Supervisor { addr: 0x1000 })
            );
            assert_eq!(
                v.write_linear(GuestAddr(0x1000), &[1, 2]),
                Err(MemError::Supervisor { addr: 0x1000 })
            );
        }
        assert_eq!(ram.0[0x1000], 0xAB, "nothing written");
        // Only the low two bits of the CPL count.
        let v = GuestVcpu::new(&mut regs, &mut ram, 7, off);
        assert_eq!(v.cpl(), 3);
    }

    #[test]
    fn registers_are_the_vmms_own() {
        let mut regs = GuestRegs {
            rbx: 1,
            rdi: 5,
            ..GuestRegs::default()
        };
        let mut ram = Ram(Vec::new());
        let mut v = GuestVcpu::new(&mut regs, &mut ram, 0, PagingMode::disabled());
        assert_eq!(v.args(), [1, 0, 0, 0, 5]);
        v.set_rax(9);
        v.set_gpr(Gpr::R12, 12);
        assert_eq!((regs.rax, regs.r12), (9, 12));
    }

    /// A [`VcpuState`] that counts its reads, as VMREADs would cost.
    struct Counting {
        cpl: u8,
        paging: PagingMode,
        cpl_reads: Cell<u32>,
        paging_reads: Cell<u32>,
    }

    impl Counting {
        fn new(cpl: u8, paging: PagingMode) -> Self {
            Counting {
                cpl,
                paging,
                cpl_reads: Cell::new(0),
                paging_reads: Cell::new(0),
            }
        }
        fn reads(&self) -> (u32, u32) {
            (self.cpl_reads.get(), self.paging_reads.get())
        }
    }

    impl VcpuState for Counting {
        fn cpl(&self) -> u8 {
            self.cpl_reads.set(self.cpl_reads.get() + 1);
            self.cpl
        }
        fn paging(&self) -> PagingMode {
            self.paging_reads.set(self.paging_reads.get() + 1);
            self.paging
        }
    }

    /// Paging on (4-level), a user page at linear 0x40_0000 -> GPA 0x5000
    /// and a supervisor page at linear 0x40_1000 -> GPA 0x6000.
    fn paged_ram() -> (Ram, PagingMode) {
        let mut ram = Ram(alloc::vec![0; 0x8000]);
        let mut put = |at: usize, v: u64| ram.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
        // PML4 at 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000; U/S on the path.
        put(0x1000, 0x2000 | 0x7);
        put(0x2000, 0x3000 | 0x7);
        put(0x3000 + 2 * 8, 0x4000 | 0x7);
        put(0x4000, 0x5000 | 0x7);
        put(0x4000 + 8, 0x6000 | 0x3);
        ram.0[0x5000..0x5004].copy_from_slice(b"user");
        ram.0[0x6000..0x6004].copy_from_slice(b"kern");
        let mode = PagingMode::new(
            CR0_PG | 1,
            0x1000,
            paging::CR4_PAE,
            paging::EFER_LMA | (1 << 8),
        );
        (ram, mode)
    }

    #[test]
    fn the_vcpu_id_comes_from_the_state_and_defaults_to_zero() {
        /// A state that names its vCPU.
        struct Third(PagingMode);
        impl VcpuState for Third {
            fn cpl(&self) -> u8 {
                0
            }
            fn paging(&self) -> PagingMode {
                self.0
            }
            fn vcpu_id(&self) -> u32 {
                3
            }
        }
        let (mut ram, mode) = paged_ram();
        let mut regs = GuestRegs::default();
        let v = GuestVcpu::lazy(&mut regs, &mut ram, Third(mode));
        assert_eq!(Vcpu::vcpu_id(&v), 3, "through the state");
        let third = Third(mode);
        let v = GuestVcpu::lazy(&mut regs, &mut ram, &third);
        assert_eq!(Vcpu::vcpu_id(&v), 3, "through a reference");
        let state = Counting::new(0, mode);
        let v = GuestVcpu::lazy(&mut regs, &mut ram, &state);
        assert_eq!(Vcpu::vcpu_id(&v), 0, "the default");
    }

    #[test]
    fn lazy_reads_nothing_until_asked_and_each_once() {
        let (mut ram, mode) = paged_ram();
        let state = Counting::new(3, mode);
        let mut regs = GuestRegs {
            rax: 4,
            rbx: 5,
            ..GuestRegs::default()
        };
        let mut v = GuestVcpu::lazy(&mut regs, &mut ram, &state);
        // Registers need neither the CPL nor the paging mode.
        assert_eq!((v.rax(), v.args()[0]), (4, 5));
        v.set_rax(6);
        assert_eq!(state.reads(), (0, 0));
        assert_eq!(v.cpl(), 3);
        assert_eq!(v.cpl(), 3);
        assert_eq!(state.reads(), (1, 0), "the CPL is read once");
        let mut buf = [0u8; 4];
        assert_eq!(v.read_linear(GuestAddr(0x40_0000), &mut buf), Ok(()));
        assert_eq!(&buf, b"user");
        // Ring 3 gets the supervisor page refused, as with `new`.
        assert_eq!(
            v.read_linear(GuestAddr(0x40_1000), &mut buf),
            Err(MemError::Supervisor { addr: 0x40_1000 })
        );
        assert_eq!(v.write_linear(GuestAddr(0x40_0000), b"USER"), Ok(()));
        assert_eq!(*v.paging(), mode);
        assert_eq!(state.reads(), (1, 1), "the paging mode is read once");
        assert_eq!(regs.rax, 6);
        assert_eq!(&ram.0[0x5000..0x5004], b"USER");
    }

    #[test]
    fn lazy_memory_access_reads_the_cpl_first() {
        // A memory access at CPL 0 with paging off: the CPL is read (it
        // decides whether paging off allows anything), then the mode.
        let mut ram = Ram(alloc::vec![0xCD; 0x2000]);
        let state = Counting::new(0, PagingMode::disabled());
        let mut regs = GuestRegs::default();
        let mut v = GuestVcpu::lazy(&mut regs, &mut ram, &state);
        let mut buf = [0u8; 2];
        assert_eq!(v.read_linear(GuestAddr(0x1000), &mut buf), Ok(()));
        assert_eq!((buf, state.reads()), ([0xCD; 2], (1, 1)));
        // Paging off and CPL 3 from a lazy state: no memory, as with `new`.
        let state = Counting::new(7, PagingMode::disabled());
        let mut v = GuestVcpu::lazy(&mut regs, &mut ram, &state);
        assert_eq!(
            v.write_linear(GuestAddr(0x1000), &[1]),
            Err(MemError::Supervisor { addr: 0x1000 })
        );
        assert_eq!(v.cpl(), 3, "only the low two bits count");
        assert_eq!(state.reads().0, 1);
        assert_eq!(ram.0[0x1000], 0xCD, "nothing written");
    }

    #[test]
    fn lazy_and_eager_agree() {
        let (mut ram, mode) = paged_ram();
        for cpl in 0..=3 {
            for addr in [0x40_0000u64, 0x40_1000, 0x40_2000, 0x1000, 1 << 47] {
                let mut regs = GuestRegs::default();
                let mut buf = [0u8; 4];
                let eager = GuestVcpu::new(&mut regs, &mut ram, cpl, mode)
                    .read_linear(GuestAddr(addr), &mut buf);
                let state = Counting::new(cpl, mode);
                let lazy = GuestVcpu::lazy(&mut regs, &mut ram, &state)
                    .read_linear(GuestAddr(addr), &mut buf);
                assert_eq!(eager, lazy, "CPL {cpl}, {addr:#x}");
            }
        }
    }
}
