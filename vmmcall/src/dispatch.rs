//! Running one hypercall: from the guest's registers to the value in RAX.
//!
//! [`dispatch`] is the whole ABI in one function, independent of the
//! vendor: the VMM calls it (through `vmexit`) when the guest executed
//! `vmcall`/`vmmcall`, then advances RIP past the instruction.

use crate::abi::{GET_VMMCALL_NUMBER, NAME_BUF_LEN};
use crate::context::read_cstr;
use crate::{Caller, Error, GuestAddr, Handler, Registry, Vcpu};

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
///
/// Generic over the vCPU type so that a VMM's concrete vCPU is read with
/// static calls on the hot path; `&mut dyn Vcpu` works too.
#[inline]
pub fn dispatch<V: Vcpu + ?Sized>(registry: &Registry<'static>, vcpu: &mut V) -> Outcome {
    let number = vcpu.regs().rax;
    if number == GET_VMMCALL_NUMBER {
        return function_zero(registry, vcpu.as_dyn_vcpu());
    }
    let Some(handler) = registry.get(number) else {
        return no_such_function(vcpu.as_dyn_vcpu(), number);
    };
    let cpl = vcpu.cpl();
    if cpl != 0 && !handler.user() {
        return refused(registry, vcpu.as_dyn_vcpu(), handler, number, cpl);
    }
    // The hot path (a handler runs) stays small: everything else is out of
    // line, so this needs few registers and a small stack frame.
    let mut caller = Caller::new(vcpu.as_dyn_vcpu(), number);
    let result = handler.invoke(&mut caller);
    let stop = caller.stop_requested();
    vcpu.regs_mut().rax = match result {
        Ok(v) => v,
        Err(e) => e.to_rax(),
    };
    Outcome {
        number,
        name: Some(handler.name()),
        result,
        stop,
    }
}

/// Function 0, out of line: its 256-byte name buffer and logging would
/// otherwise weigh on every other call's stack frame.
#[inline(never)]
fn function_zero(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> Outcome {
    let value = get_vmmcall_number(registry, vcpu);
    vcpu.regs_mut().rax = value;
    Outcome {
        number: GET_VMMCALL_NUMBER,
        name: None,
        result: Ok(value),
        stop: None,
    }
}

/// `-ENOSYS` for a number no handler has.
#[cold]
#[inline(never)]
fn no_such_function(vcpu: &mut dyn Vcpu, number: u64) -> Outcome {
    log::debug!("vmmcall: no function {number:#x}");
    vcpu.regs_mut().rax = Error::NoSys.to_rax();
    Outcome {
        number,
        name: None,
        result: Err(Error::NoSys),
        stop: None,
    }
}

/// `-EPERM` for a kernel-only handler called from CPL > 0 (counted as a
/// call of that handler).
#[cold]
#[inline(never)]
fn refused(
    registry: &Registry<'static>,
    vcpu: &mut dyn Vcpu,
    handler: &'static Handler,
    number: u64,
    cpl: u8,
) -> Outcome {
    log::debug!("vmmcall {}: refused at CPL {cpl}", handler.name());
    registry.count_refused(handler);
    vcpu.regs_mut().rax = Error::Permission.to_rax();
    Outcome {
        number,
        name: Some(handler.name()),
        result: Err(Error::Permission),
        stop: None,
    }
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
