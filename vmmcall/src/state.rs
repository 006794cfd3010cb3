//! [`InVm`]: a vCPU with the VMM's own state for the calling VM and vCPU,
//! which handlers reach through [`Caller::vcpu_id`](crate::Caller::vcpu_id),
//! [`Caller::vm`](crate::Caller::vm) and
//! [`Caller::vcpu_state`](crate::Caller::vcpu_state).
//!
//! The VMM wraps the vCPU it hands to [`dispatch`](fn@crate::dispatch) or
//! `vmexit::handle_hypercall` at each exit; see [`InVm`].

use crate::abi::MAX_ARGS;
use crate::step::Stepper;
use crate::{GuestAddr, GuestRegs, MemError, Registers, Vcpu};
use core::any::Any;

/// A vCPU (any [`Vcpu`]: a [`GuestVcpu`](crate::GuestVcpu), `&mut` one,
/// the VMM's own type) with its id and the VMM's state for its VM and for
/// itself.
///
/// Handlers are registered once for the whole image (a linker-section
/// slice of plain function pointers), so they cannot be generic over the
/// VMM's types; the state reaches them type-erased, as `dyn Any`, and is
/// downcast on use: one `TypeId` comparison, in the handlers that ask for
/// it only. A VMM wraps the vCPU it already hands to
/// [`dispatch`](fn@crate::dispatch) or `vmexit::handle_hypercall`:
///
/// ```
/// use core::sync::atomic::{AtomicU64, Ordering};
/// use vmmcall::{dispatch, mock::MockVcpu, Caller, Error, InVm, Registry};
///
/// /// The VMM's state for one VM: shared by its vCPUs, so `Sync`.
/// struct MyVm { id: u64, calls: AtomicU64 }
/// /// The VMM's state for one vCPU: its own, so handlers may mutate it.
/// struct MyVcpu { calls: u64 }
///
/// #[vmmcall::vmmcall("whoami", user)]
/// fn whoami(cx: &mut Caller) -> Result<u64, Error> {
///     let vcpu = cx.vcpu_id();
///     cx.vcpu_state::<MyVcpu>().ok_or(Error::Io)?.calls += 1;
///     let vm = cx.vm::<MyVm>().ok_or(Error::Io)?;
///     vm.calls.fetch_add(1, Ordering::Relaxed);
///     Ok(vm.id << 32 | u64::from(vcpu))
/// }
///
/// # fn main() {
/// let registry = Registry::global().unwrap();
/// let vm = MyVm { id: 7, calls: AtomicU64::new(0) };
/// let mut cpu = MyVcpu { calls: 0 };
/// let mut vcpu = MockVcpu::new();
/// vcpu.regs.rax = registry.lookup(b"whoami").unwrap().get();
/// // At the exit: the vCPU as usual, plus whose it is.
/// let mut in_vm = InVm::new(&mut vcpu, 3).with_vm(&vm).with_vcpu_state(&mut cpu);
/// assert_eq!(dispatch(registry, &mut in_vm).result, Ok(7 << 32 | 3));
/// assert_eq!((vm.calls.load(Ordering::Relaxed), cpu.calls), (1, 1));
/// # }
/// ```
///
/// Every [`Registers`] and [`Vcpu`] method goes to the wrapped vCPU; only
/// [`Vcpu::vcpu_id`], [`Vcpu::vm_state`] and [`Vcpu::vcpu_state`] answer
/// from here. Made per exit, like the vCPU it wraps: it holds references
/// only, nothing is copied.
pub struct InVm<'s, V> {
    vcpu: V,
    id: u32,
    vm: Option<&'s (dyn Any + Sync)>,
    state: Option<&'s mut dyn Any>,
    stepper: Option<&'s mut dyn Stepper>,
}

impl<'s, V: Vcpu> InVm<'s, V> {
    /// `vcpu`, the vCPU with id `vcpu_id` in its VM, without state yet.
    #[inline]
    pub fn new(vcpu: V, vcpu_id: u32) -> Self {
        InVm {
            vcpu,
            id: vcpu_id,
            vm: None,
            state: None,
            stepper: None,
        }
    }

    /// The VMM's state for the calling VM, which handlers get with
    /// [`Caller::vm::<M>`](crate::Caller::vm). `Sync`: the VM's other
    /// vCPUs may read it in their handlers at the same moment.
    #[inline]
    pub fn with_vm<M: Any + Sync>(mut self, vm: &'s M) -> Self {
        self.vm = Some(vm);
        self
    }

    /// The VMM's state for this vCPU, which handlers get with
    /// [`Caller::vcpu_state::<S>`](crate::Caller::vcpu_state).
    #[inline]
    pub fn with_vcpu_state<S: Any>(mut self, state: &'s mut S) -> Self {
        self.state = Some(state);
        self
    }

    /// What the VMM provides for long calls on this vCPU
    /// ([`crate::step`]): its [`Continuations`](crate::step::Continuations),
    /// the call's [`Site`](crate::step::Site) and whether an interrupt is
    /// pending. Without it, long calls run to their end in one exit.
    #[inline]
    pub fn with_stepper(mut self, stepper: &'s mut dyn Stepper) -> Self {
        self.stepper = Some(stepper);
        self
    }

    /// The wrapped vCPU.
    #[inline]
    pub fn into_inner(self) -> V {
        self.vcpu
    }
}

impl<V: Vcpu> Registers for InVm<'_, V> {
    #[inline]
    fn gpr(&self, reg: crate::Gpr) -> u64 {
        self.vcpu.gpr(reg)
    }
    #[inline]
    fn set_gpr(&mut self, reg: crate::Gpr, value: u64) {
        self.vcpu.set_gpr(reg, value);
    }
    #[inline]
    fn rax(&self) -> u64 {
        self.vcpu.rax()
    }
    #[inline]
    fn set_rax(&mut self, value: u64) {
        self.vcpu.set_rax(value);
    }
    #[inline]
    fn args(&self) -> [u64; MAX_ARGS] {
        self.vcpu.args()
    }
    fn snapshot(&self) -> GuestRegs {
        self.vcpu.snapshot()
    }
}

impl<V: Vcpu> Vcpu for InVm<'_, V> {
    #[inline]
    fn cpl(&self) -> u8 {
        self.vcpu.cpl()
    }
    #[inline]
    fn read_linear(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), MemError> {
        self.vcpu.read_linear(addr, buf)
    }
    #[inline]
    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError> {
        self.vcpu.write_linear(addr, data)
    }
    #[inline]
    fn write_linear_all(&mut self, writes: &[(GuestAddr, &[u8])]) -> Result<(), MemError> {
        self.vcpu.write_linear_all(writes)
    }
    #[inline]
    fn vcpu_id(&self) -> u32 {
        self.id
    }
    #[inline]
    fn vm_state(&self) -> Option<&(dyn Any + Sync)> {
        self.vm
    }
    #[inline]
    fn vcpu_state(&mut self) -> Option<&mut dyn Any> {
        match &mut self.state {
            Some(s) => Some(&mut **s),
            None => None,
        }
    }
    #[inline]
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        match &mut self.stepper {
            Some(s) => Some(&mut **s),
            None => self.vcpu.stepper(),
        }
    }
    #[inline]
    fn translate(&mut self, addr: GuestAddr, write: bool) -> Result<u64, MemError> {
        self.vcpu.translate(addr, write)
    }
    #[inline]
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.vcpu.read_phys(gpa, buf)
    }
    #[inline]
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.vcpu.write_phys(gpa, data)
    }
    #[inline]
    fn check_phys(&mut self, gpa: u64, len: usize) -> Result<(), MemError> {
        self.vcpu.check_phys(gpa, len)
    }
}

/// A `&mut` vCPU is a vCPU, so that [`InVm`] can wrap one the VMM keeps.
impl<V: Vcpu + ?Sized> Vcpu for &mut V {
    #[inline]
    fn cpl(&self) -> u8 {
        (**self).cpl()
    }
    #[inline]
    fn read_linear(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read_linear(addr, buf)
    }
    #[inline]
    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError> {
        (**self).write_linear(addr, data)
    }
    #[inline]
    fn write_linear_all(&mut self, writes: &[(GuestAddr, &[u8])]) -> Result<(), MemError> {
        (**self).write_linear_all(writes)
    }
    #[inline]
    fn vcpu_id(&self) -> u32 {
        (**self).vcpu_id()
    }
    #[inline]
    fn vm_state(&self) -> Option<&(dyn Any + Sync)> {
        (**self).vm_state()
    }
    #[inline]
    fn vcpu_state(&mut self) -> Option<&mut dyn Any> {
        (**self).vcpu_state()
    }
    #[inline]
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        (**self).stepper()
    }
    #[inline]
    fn translate(&mut self, addr: GuestAddr, write: bool) -> Result<u64, MemError> {
        (**self).translate(addr, write)
    }
    #[inline]
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read_phys(gpa, buf)
    }
    #[inline]
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        (**self).write_phys(gpa, data)
    }
    #[inline]
    fn check_phys(&mut self, gpa: u64, len: usize) -> Result<(), MemError> {
        (**self).check_phys(gpa, len)
    }
}
