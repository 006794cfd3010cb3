//! The interface between the run loop ([`crate::exits`]) and a vendor:
//! [`Backend`], one vCPU that enters the guest and hands back a
//! vendor-neutral [`VmExit`]. The two implementations are the bare-metal
//! halves of the vendor modules, `svm::rt` (AMD SVM) and `vmx::rt` (Intel
//! VMX); the run loop's tests implement it with a mock.

use crate::cpuid::CpuidPolicy;
use crate::guest::Profile;
use crate::smp::Slot;
use crate::vcpu::GuestRam;
use crate::vmsr::GuestMsrs;
use vmexit::VmExit;
use vmmcall::{GuestRegs, VcpuState};

/// What the run loop needs of the machine beyond its vCPU: this CPU's
/// local APIC and signalling another CPU (`rt::smp`); a mock in tests.
pub trait Host {
    /// Write `value` to the register at `offset` of this CPU's xAPIC.
    fn apic_write(&self, offset: u32, value: u32);
    /// Read the register at `offset` of this CPU's xAPIC.
    fn apic_read(&self, offset: u32) -> u32;
    /// Send the IPI `icr_low` to the destination in `icr_high` from this
    /// CPU's local APIC.
    fn apic_send(&self, icr_high: u32, icr_low: u32);
    /// Signal the CPU of `slot` (an NMI its VMM does not forward).
    fn signal(&self, slot: &Slot);
}

/// A backend: one vCPU of one vendor. As a [`VcpuState`] it gives the
/// guest's CPL and paging mode, which handlers read lazily; as
/// [`GuestMsrs`] the MSRs it switches (EFER, PAT) for [`crate::vmsr`].
pub trait Backend: VcpuState + GuestMsrs {
    /// Run the guest until the next exit, and decode it
    /// ([`VmExit::from_svm`], [`VmExit::from_vmx`]).
    fn enter(&mut self, regs: &mut GuestRegs) -> VmExit;
    /// The guest's RIP.
    fn rip(&self) -> u64;
    /// Set the guest's RIP.
    fn set_rip(&mut self, rip: u64);
    /// Guest RAM (the same for the whole run).
    fn ram(&self) -> GuestRam;
    /// Inject a hardware exception at the next entry.
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>);
    /// Emulate `MOV CRn, value` for a write that exited because it touches
    /// a bit the VMM owns (VMX guest/host masks). `false`: the value is not
    /// allowed and the guest gets `#GP(0)`.
    fn write_cr(&mut self, cr: u8, value: u64) -> bool;
    /// Which guest runs.
    fn profile(&self) -> Profile;
    /// What CPUID may offer on this backend.
    fn cpuid_policy(&self) -> CpuidPolicy;
    /// The guest's RFLAGS.
    fn rflags(&self) -> u64;
    /// The linear address of the guest's `rip`: CS.base + RIP outside
    /// 64-bit mode (truncated to 32 bits), RIP itself in 64-bit mode.
    fn code_address(&self, rip: u64) -> u64;
    /// Set DR6.BS and the other `dr6` bits of a debug exception about to be
    /// injected (SDM Vol. 3A §19.2.3; VMX does not switch DR6, SVM keeps it
    /// in the VMCB).
    fn set_dr6(&mut self, dr6: u64);
    /// Whether the guest has a local APIC (crate::lapic): its page is
    /// mapped read-only and its writes come to the run loop.
    fn lapic(&self) -> bool {
        false
    }
    /// Whether this CPU's local APIC holds an interrupt the guest would
    /// take now: [`crate::longcall::lapic_requests`] on this CPU's APIC
    /// and the machine's guest vectors. Asked between the steps of a long
    /// call when [`Backend::lapic`] says the guest has an APIC.
    fn lapic_requests(&self) -> bool {
        false
    }
    /// Whether the guest's code segment is 64-bit (EFER.LMA and CS.L):
    /// how its instruction bytes decode.
    fn long_code(&self) -> bool;
    /// An NMI made the guest exit: hand it to this CPU's slot
    /// ([`crate::smp::Slot::nmi_arrived`]), which tells the VMM's signal
    /// from an NMI for the guest.
    fn nmi_exit(&mut self);
}
