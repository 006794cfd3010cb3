//! What a handler sees of the guest that called it.
//!
//! A VMM implements [`Vcpu`] for its vCPU type (registers through
//! [`Registers`], privilege level, guest-memory access by guest-linear
//! address), or wraps its state in [`GuestVcpu`](crate::GuestVcpu), which
//! does it with the guest page walker. Handlers never see the `Vcpu`
//! directly: the dispatcher wraps it in a [`Caller`], which exposes
//! read-only registers, checked memory access and a way to stop the guest.

use crate::abi::{MAX_ARGS, NAME_BUF_LEN};
use crate::budget::guest_log;
use crate::regs::{Gpr, GuestRegs, Registers};
use crate::step::{Stepper, PROGRESS_WORDS};
use crate::Error;
use core::any::Any;
use core::fmt;

/// A guest-linear (virtual) address, as the guest passes it in a register.
///
/// Use it as a handler parameter type to take a pointer from the guest; read
/// and write through [`Caller::read`] / [`Caller::write`], which check it.
/// Any 64-bit value converts; a bad address shows up as
/// [`Error::Fault`] when it is used, never earlier.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GuestAddr(pub u64);

impl GuestAddr {
    /// The raw address.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `self + off`, or `None` if it wraps around the address space.
    pub const fn checked_add(self, off: u64) -> Option<GuestAddr> {
        match self.0.checked_add(off) {
            Some(a) => Some(GuestAddr(a)),
            None => None,
        }
    }

    /// Whether the address is canonical for 48-bit linear addresses
    /// (bits 63:47 all equal; Intel SDM Vol. 1 §3.3.7.1).
    pub const fn is_canonical(self) -> bool {
        let top = self.0 >> 47;
        top == 0 || top == 0x1_ffff
    }
}

impl fmt::Debug for GuestAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for GuestAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Why an access to guest memory failed. Every variant reaches the guest as
/// [`Error::Fault`]; the detail is for the VMM's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemError {
    /// The linear address is not canonical.
    NonCanonical {
        /// The offending address.
        addr: u64,
    },
    /// A guest paging-structure entry on the walk is not present.
    NotPresent {
        /// The linear address being translated.
        addr: u64,
        /// Paging level whose entry is not present (4 = PML4 ... 1 = PT).
        level: u8,
    },
    /// A ring-3 caller named a supervisor-only page.
    Supervisor {
        /// The linear address being translated.
        addr: u64,
    },
    /// A write to a page the guest mapped read-only.
    ReadOnly {
        /// The linear address being translated.
        addr: u64,
    },
    /// The guest-physical address is not guest RAM (nested tables do not
    /// map it, or it is MMIO).
    OutsideRam {
        /// The guest-physical address.
        gpa: u64,
    },
    /// A paging-structure entry has reserved bits set.
    Reserved {
        /// The linear address being translated.
        addr: u64,
        /// Paging level of the bad entry.
        level: u8,
    },
    /// `addr + len` wraps around the address space.
    RangeOverflow {
        /// Start of the range.
        addr: u64,
        /// Its length.
        len: u64,
    },
    /// The guest runs in a paging mode this VMM does not walk.
    UnsupportedMode,
    /// A write of more than [`WRITE_KEPT_PIECES`](crate::paging::WRITE_KEPT_PIECES)
    /// pages' worth of pieces whose data would land on a paging structure
    /// that translates the range itself (refused before anything is
    /// written, see [`crate::paging`]).
    OverwritesOwnTables {
        /// The linear address of the first piece that would.
        addr: u64,
    },
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemError::NonCanonical { addr } => write!(f, "non-canonical address {addr:#x}"),
            MemError::NotPresent { addr, level } => {
                write!(f, "{addr:#x} not present at paging level {level}")
            }
            MemError::Supervisor { addr } => write!(f, "{addr:#x} is a supervisor page"),
            MemError::ReadOnly { addr } => write!(f, "{addr:#x} is read-only"),
            MemError::OutsideRam { gpa } => write!(f, "guest-physical {gpa:#x} is not guest RAM"),
            MemError::Reserved { addr, level } => {
                write!(f, "{addr:#x}: reserved bits set at paging level {level}")
            }
            MemError::RangeOverflow { addr, len } => {
                write!(f, "range {addr:#x} + {len:#x} overflows the address space")
            }
            MemError::UnsupportedMode => write!(f, "unsupported guest paging mode"),
            MemError::OverwritesOwnTables { addr } => write!(
                f,
                "a long write would overwrite, at {addr:#x}, the guest page tables that map it"
            ),
        }
    }
}

impl From<MemError> for Error {
    fn from(_: MemError) -> Error {
        Error::Fault
    }
}

/// The calling vCPU, as the VMM exposes it to the dispatcher.
///
/// Registers come from the [`Registers`] supertrait, wherever the VMM keeps
/// them; the dispatcher reads RAX and the argument registers and writes
/// RAX, nothing else.
///
/// Memory accesses are by guest-linear address and must apply the guest's
/// own page tables with the caller's privilege ([`Vcpu::cpl`]), then the
/// nested (NPT/EPT) tables. Implementations must never panic on any address
/// or length: every failure is a [`MemError`]. [`GuestVcpu`](crate::GuestVcpu)
/// is such an implementation over any [`Registers`] and
/// [`GuestPhysMemory`](crate::paging::GuestPhysMemory).
pub trait Vcpu: Registers + AsDynVcpu {
    /// The current privilege level of the caller (0..=3).
    fn cpl(&self) -> u8;
    /// Copy `buf.len()` bytes of guest memory at `addr` into `buf`.
    fn read_linear(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), MemError>;
    /// Copy `data` into guest memory at `addr`.
    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError>;
    /// Copy each `(addr, data)` into guest memory, in order, as one write:
    /// every range is checked before the first byte is written, so that on
    /// an error nothing is written ([`Caller::write_all`]).
    ///
    /// The default writes the ranges one after the other with
    /// [`write_linear`](Vcpu::write_linear), so it checks each range only
    /// before its own bytes: an implementation overrides it to keep the
    /// rule across ranges, as [`GuestVcpu`](crate::GuestVcpu) does with
    /// [`crate::paging::write_linear_all`].
    fn write_linear_all(&mut self, writes: &[(GuestAddr, &[u8])]) -> Result<(), MemError> {
        for &(addr, data) in writes {
            self.write_linear(addr, data)?;
        }
        Ok(())
    }

    /// The calling vCPU's id within its VM, as the VMM numbers them
    /// ([`Caller::vcpu_id`]). 0 unless the VMM says otherwise, for example
    /// through [`InVm`](crate::InVm).
    #[inline]
    fn vcpu_id(&self) -> u32 {
        0
    }

    /// The VMM's state for the calling VM, shared by all its vCPUs
    /// ([`Caller::vm`]); `None` unless the VMM provides it.
    #[inline]
    fn vm_state(&self) -> Option<&(dyn Any + Sync)> {
        None
    }

    /// The VMM's state for the calling vCPU, which only this vCPU's calls
    /// see ([`Caller::vcpu_state`]); `None` unless the VMM provides it.
    #[inline]
    fn vcpu_state(&mut self) -> Option<&mut dyn Any> {
        None
    }

    /// What the VMM provides for long calls ([`crate::step`]): `None`
    /// (the default) runs every long call to its end in one exit.
    #[inline]
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        None
    }

    /// The guest-physical address of guest-linear `addr`, translated now
    /// through the guest's page tables for a read (or a `write`) with the
    /// caller's privilege, by the rules of
    /// [`read_linear`](Vcpu::read_linear) and
    /// [`write_linear`](Vcpu::write_linear): the same errors for the same
    /// addresses. The answer holds for the rest of `addr`'s 4 KiB page.
    ///
    /// A VMM that copies through a translation it made earlier in the
    /// same exit uses it as a processor uses a TLB entry: a change another
    /// vCPU makes to the guest's page tables meanwhile may not be seen
    /// before the exit ends (docs/ABI.md, "`vmmcall_batch`"). With
    /// [`read_phys`](Vcpu::read_phys) and [`write_phys`](Vcpu::write_phys)
    /// it is what `vmmcall_batch` copies its list and results with.
    ///
    /// The default answers [`MemError::UnsupportedMode`]: a VMM whose vCPU
    /// type does not translate gets `-EFAULT` for every batch (a
    /// [`GuestVcpu`](crate::GuestVcpu) and the mock translate).
    fn translate(&mut self, addr: GuestAddr, write: bool) -> Result<u64, MemError> {
        let _ = (addr, write);
        Err(MemError::UnsupportedMode)
    }

    /// Copy `buf.len()` bytes of guest-physical memory at `gpa`, all
    /// within one 4 KiB page, into `buf`: guest RAM only, whatever `gpa`
    /// is ([`MemError::OutsideRam`] otherwise). No privilege applies:
    /// the caller of this method decided that the guest may name `gpa`
    /// (a translation, or a guest-physical address from CPL 0). The
    /// default: [`MemError::OutsideRam`].
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let _ = buf;
        Err(MemError::OutsideRam { gpa })
    }

    /// Copy `data` into guest-physical memory at `gpa`, all within one
    /// 4 KiB page: guest RAM only, as [`read_phys`](Vcpu::read_phys).
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let _ = data;
        Err(MemError::OutsideRam { gpa })
    }

    /// Whether [`write_phys`](Vcpu::write_phys) of `len` bytes at `gpa`
    /// (within one 4 KiB page) would succeed, without writing: how a
    /// caller checks before it writes anything. The default:
    /// [`MemError::OutsideRam`].
    fn check_phys(&mut self, gpa: u64, len: usize) -> Result<(), MemError> {
        let _ = len;
        Err(MemError::OutsideRam { gpa })
    }
}

/// `&mut dyn Vcpu` from any vCPU, including one that already is `dyn`.
///
/// Implemented for every [`Vcpu`] automatically; it lets
/// [`dispatch`](fn@crate::dispatch) be generic (static calls on the hot path
/// for a concrete vCPU type) and still hand handlers a `dyn Vcpu`.
pub trait AsDynVcpu {
    /// This vCPU as a trait object.
    fn as_dyn_vcpu(&mut self) -> &mut dyn Vcpu;
}

impl<T: Vcpu> AsDynVcpu for T {
    #[inline]
    fn as_dyn_vcpu(&mut self) -> &mut dyn Vcpu {
        self
    }
}

/// Why [`Caller::read_cstr`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CStrError {
    /// Guest memory could not be read before a NUL was found.
    Fault(MemError),
    /// No NUL within the buffer.
    Unterminated,
}

impl From<CStrError> for Error {
    fn from(e: CStrError) -> Error {
        match e {
            CStrError::Fault(_) => Error::Fault,
            CStrError::Unterminated => Error::Invalid,
        }
    }
}

const PAGE_SIZE: u64 = 4096;

/// Read a NUL-terminated string at `addr` into `buf`, page by page, so that
/// bytes past the terminator are never touched (a name that ends just before
/// an unmapped page is fine). Returns the bytes before the NUL.
pub fn read_cstr<'b>(
    vcpu: &mut dyn Vcpu,
    addr: GuestAddr,
    buf: &'b mut [u8],
) -> Result<&'b [u8], CStrError> {
    let mut done: usize = 0;
    let cap = buf.len();
    while done < cap {
        let overflow = CStrError::Fault(MemError::RangeOverflow {
            addr: addr.0,
            len: cap as u64,
        });
        let at = addr.checked_add(done as u64).ok_or(overflow)?;
        // In 1..=PAGE_SIZE: the bytes left on this page.
        let to_page_end = PAGE_SIZE.wrapping_sub(at.0 % PAGE_SIZE);
        let left = cap.saturating_sub(done);
        let chunk = usize::try_from(to_page_end).map_or(left, |p| p.min(left));
        let end = done.saturating_add(chunk);
        let window = buf.get_mut(done..end).ok_or(CStrError::Unterminated)?;
        vcpu.read_linear(at, window).map_err(CStrError::Fault)?;
        if let Some(nul) = window.iter().position(|&b| b == 0) {
            return buf
                .get(..done.saturating_add(nul))
                .ok_or(CStrError::Unterminated);
        }
        done = end;
    }
    Err(CStrError::Unterminated)
}

/// The handler's view of the calling vCPU.
///
/// Handlers take `&mut Caller` as their optional first parameter.
pub struct Caller<'a> {
    vcpu: &'a mut dyn Vcpu,
    number: u64,
    stop: Option<u32>,
}

impl<'a> Caller<'a> {
    /// Wrap a vCPU for a call to function `number`.
    #[inline]
    pub fn new(vcpu: &'a mut dyn Vcpu, number: u64) -> Self {
        Caller {
            vcpu,
            number,
            stop: None,
        }
    }

    /// The function number the guest called.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The caller's privilege level (0..=3).
    pub fn cpl(&self) -> u8 {
        self.vcpu.cpl()
    }

    /// One of the guest's registers at the call (read-only: the result goes
    /// in RAX through the handler's return value).
    #[inline]
    pub fn gpr(&self, reg: Gpr) -> u64 {
        self.vcpu.gpr(reg)
    }

    /// All of the guest's registers at the call, copied.
    pub fn regs(&self) -> GuestRegs {
        self.vcpu.snapshot()
    }

    /// The five argument registers, RBX, RCX, RDX, RSI, RDI.
    #[inline]
    pub fn args(&self) -> [u64; MAX_ARGS] {
        self.vcpu.args()
    }

    /// Read guest memory at a guest-linear address with the caller's
    /// privilege. Failures are logged and become [`Error::Fault`].
    pub fn read(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), Error> {
        self.vcpu.read_linear(addr, buf).map_err(|e| self.fault(e))
    }

    /// Write guest memory at a guest-linear address with the caller's
    /// privilege. Failures are logged and become [`Error::Fault`].
    pub fn write(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), Error> {
        self.vcpu
            .write_linear(addr, data)
            .map_err(|e| self.fault(e))
    }

    /// The next call on the same vCPU view, function `number`, no stop
    /// requested: how a batch runs its entries on one `Caller` per group.
    #[inline]
    pub(crate) fn next_call(&mut self, number: u64) {
        self.number = number;
        self.stop = None;
    }

    /// The vCPU view this caller wraps.
    #[inline]
    pub(crate) fn vcpu(&mut self) -> &mut dyn Vcpu {
        self.vcpu
    }

    /// Write several ranges of guest memory as one, with the caller's
    /// privilege: every range is translated and checked before the first
    /// byte is written, so a failure ([`Error::Fault`], logged) leaves all
    /// of them unwritten (docs/ABI.md, "Check first, then write"). Two
    /// calls of [`write`](Caller::write) give that only per call: the
    /// second can fail after the first wrote.
    pub fn write_all(&mut self, writes: &[(GuestAddr, &[u8])]) -> Result<(), Error> {
        self.vcpu
            .write_linear_all(writes)
            .map_err(|e| self.fault(e))
    }

    /// Read a NUL-terminated string of at most `buf.len() - 1` bytes.
    /// Returns the bytes before the NUL; [`Error::Fault`] if memory is
    /// unreadable first, [`Error::Invalid`] if no NUL is found in `buf`.
    pub fn read_cstr<'b>(&mut self, addr: GuestAddr, buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
        match read_cstr(self.vcpu, addr, buf) {
            Ok(s) => Ok(s),
            Err(CStrError::Fault(e)) => Err(self.fault(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Read a hypercall-name-sized string (at most [`NAME_BUF_LEN`] bytes
    /// with its NUL) into `buf`.
    pub fn read_name<'b>(
        &mut self,
        addr: GuestAddr,
        buf: &'b mut [u8; NAME_BUF_LEN],
    ) -> Result<&'b [u8], Error> {
        self.read_cstr(addr, buf)
    }

    /// Ask the VMM to stop this guest after the call returns, with `status`
    /// as the guest's exit status (0 = success).
    pub fn request_stop(&mut self, status: u32) {
        self.stop = Some(status);
    }

    /// The stop requested by the handler, if any.
    #[inline]
    pub fn stop_requested(&self) -> Option<u32> {
        self.stop
    }

    fn fault(&self, e: MemError) -> Error {
        guest_log!(
            log::Level::Warn,
            "vmmcall {}: guest memory: {}",
            self.number,
            e
        );
        Error::Fault
    }
}

/// The calling vCPU and its VMM: which vCPU called, and the VMM's own
/// state for the calling VM and vCPU, typed, without statics or `unsafe`
/// in the handler. The VMM provides them through its [`Vcpu`] (usually by
/// wrapping it in [`InVm`](crate::InVm)); handlers of an `interface!` get
/// the same through their `cx`.
///
/// Each accessor asks the vCPU when it is called: a handler that does not
/// use them costs nothing (the null hypercall reads none of them).
impl Caller<'_> {
    /// The calling vCPU's id within its VM, as the VMM numbers them (0 for
    /// a VMM that does not).
    #[inline]
    pub fn vcpu_id(&self) -> u32 {
        self.vcpu.vcpu_id()
    }

    /// The VMM's state for the calling VM, if the VMM provided state of
    /// type `T` (shared with the VM's other vCPUs, which may be in a
    /// handler at the same moment: mutate it through atomics or locks).
    /// `None` if it provided none, or state of another type: a VMM bug,
    /// which a handler usually answers with an error of its choice.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU64, Ordering};
    /// use vmmcall::{mock::MockVcpu, Caller, Error, InVm};
    ///
    /// struct MyVm { calls: AtomicU64 }
    ///
    /// fn count(cx: &mut Caller) -> Result<u64, Error> {
    ///     let vm = cx.vm::<MyVm>().ok_or(Error::Io)?;
    ///     Ok(vm.calls.fetch_add(1, Ordering::Relaxed) + 1)
    /// }
    ///
    /// let vm = MyVm { calls: AtomicU64::new(0) };
    /// let mut vcpu = InVm::new(MockVcpu::new(), 1).with_vm(&vm);
    /// assert_eq!(count(&mut Caller::new(&mut vcpu, 1)), Ok(1));
    /// assert_eq!(count(&mut Caller::new(&mut MockVcpu::new(), 1)), Err(Error::Io));
    /// ```
    #[inline]
    pub fn vm<T: Any>(&self) -> Option<&T> {
        let state: &dyn Any = self.vcpu.vm_state()?;
        state.downcast_ref()
    }

    /// The VMM's state for the calling vCPU, if it provided state of type
    /// `T`: this vCPU's alone, so the handler may change it in place.
    #[inline]
    pub fn vcpu_state<T: Any>(&mut self) -> Option<&mut T> {
        self.vcpu.vcpu_state()?.downcast_mut()
    }
}

/// Long calls ([`crate::step`]): a handler declared `long` works in steps.
impl Caller<'_> {
    /// The progress this call stored at its last [`step`](Self::step):
    /// zeros for a new call, and always for a handler that is not `long`
    /// or a VMM without steps. The VMM keeps it; the guest cannot change
    /// it (a guest that changes the call's registers, CPL, RIP or paging
    /// makes a new call, whose progress is zeros).
    pub fn progress(&mut self) -> [u64; PROGRESS_WORDS] {
        match self.vcpu.stepper() {
            Some(st) => st.continuations().progress(),
            None => [0; PROGRESS_WORDS],
        }
    }

    /// Between two steps (a step touches at most one 4 KiB page of guest
    /// memory): store `progress`, from which the call continues when the
    /// guest executes it again, and answer `Err(Error::Busy)` when the
    /// call must yield now: the guest has an interrupt pending, or the
    /// exit's budget is spent. Return that error at once (`?`): dispatch
    /// then leaves RIP and RAX for the guest to call again, whatever the
    /// handler returns. `Ok` otherwise, and always for a handler that is
    /// not `long` or a VMM without steps.
    pub fn step(&mut self, progress: [u64; PROGRESS_WORDS]) -> Result<(), Error> {
        let Some(st) = self.vcpu.stepper() else {
            return Ok(());
        };
        if st.step_done(progress) {
            Err(Error::Busy)
        } else {
            Ok(())
        }
    }
}
