//! Running one hypercall: from the guest's registers to the value in RAX.
//!
//! [`dispatch`] is the whole ABI in one function, independent of the
//! vendor: the VMM calls it (through `vmexit`) when the guest executed
//! `vmcall`/`vmmcall`, then advances RIP past the instruction.

use crate::abi::{GET_VMMCALL_NUMBER, NAME_BUF_LEN};
use crate::context::read_cstr;
use crate::{Caller, Error, GuestAddr, Registry, Vcpu};

/// What a hypercall did. RAX has already been written when you get this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The function number the guest passed in RAX.
    pub number: u64,
    /// The handler's name (`None` for `get_vmmcall_number` and unknown numbers).
    pub name: Option<&'static str>,
    /// What RAX now holds: the value, or the error (RAX holds `-errno`).
    pub result: Result<u64, Error>,
    /// A handler asked the VMM to stop the guest with this status.
    pub stop: Option<u32>,
}

/// Run the hypercall the guest asked for and write its result to RAX.
///
/// Never panics, whatever the registers and guest memory hold:
/// - RAX = 0: `get_vmmcall_number`: RBX names a NUL-terminated string of at
///   most 255 bytes; RAX becomes its number, or 0 if it is unknown,
///   unreadable, or not terminated within 256 bytes.
/// - RAX = a handler's number: the handler runs if the caller's CPL allows
///   (CPL 0, or any CPL for `user` handlers), else `-EPERM`.
/// - Any other RAX: `-ENOSYS`.
///
/// Only RAX is written; every other register is left as the guest had it.
pub fn dispatch(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> Outcome {
    let number = vcpu.regs().rax;
    if number == GET_VMMCALL_NUMBER {
        let value = get_vmmcall_number(registry, vcpu);
        vcpu.regs_mut().rax = value;
        return Outcome { number, name: None, result: Ok(value), stop: None };
    }
    let Some(handler) = registry.get(number) else {
        log::debug!("vmmcall: no function {number:#x}");
        vcpu.regs_mut().rax = Error::NoSys.to_rax();
        return Outcome { number, name: None, result: Err(Error::NoSys), stop: None };
    };
    let cpl = vcpu.cpl();
    let (result, stop) = if cpl != 0 && !handler.user() {
        log::debug!("vmmcall {}: refused at CPL {cpl}", handler.name());
        registry.count_refused(handler);
        (Err(Error::Permission), None)
    } else {
        let mut caller = Caller::new(vcpu, number);
        let result = handler.invoke(&mut caller);
        (result, caller.stop_requested())
    };
    vcpu.regs_mut().rax = match result {
        Ok(v) => v,
        Err(e) => e.to_rax(),
    };
    Outcome { number, name: Some(handler.name()), result, stop }
}

/// Function 0: the number for the name at RBX, 0 if there is none.
fn get_vmmcall_number(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> u64 {
    let addr = GuestAddr(vcpu.regs().rbx);
    let mut buf = [0u8; NAME_BUF_LEN];
    match read_cstr(vcpu, addr, &mut buf) {
        Ok(name) => registry.lookup(name).map_or(0, |n| n.get()),
        Err(e) => {
            log::debug!("get_vmmcall_number: name at {addr:?}: {e:?}");
            0
        }
    }
}
