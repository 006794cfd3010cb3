//! Running one hypercall: from the guest's registers to the value in RAX.
//!
//! [`dispatch`] is the whole ABI in one function, independent of the
//! vendor: the VMM calls it (through `vmexit`) when the guest executed
//! `vmcall`/`vmmcall`, then advances RIP past the instruction.

use crate::abi::{
    BATCH, DESCRIBE, DESCRIBE_LONG, DESCRIBE_TYPED, DESCRIBE_USER, GET_VMMCALL_NUMBER,
    LOOKUP_TYPED, NAME_BUF_LEN,
};
use crate::budget::guest_log;
use crate::context::read_cstr;
use crate::step::{Begin, Key};
use crate::{Caller, Error, Gpr, GuestAddr, Handler, Registers, Registry, TypedLookup, Vcpu};

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
    /// A long call yielded between two steps (docs/ABI.md, "Long calls"):
    /// the VMM must leave RIP on the hypercall instruction (`vmexit`'s
    /// `rip_advance` is then 0). RAX was not written: it still holds the
    /// function number, so the guest continues the call by executing the
    /// instruction again; `result` is then `Err(Error::Busy)`, which the
    /// guest never sees.
    pub pending: bool,
}

/// Run the hypercall the guest asked for and write its result to RAX.
///
/// Never panics, whatever the registers and guest memory hold:
/// - RAX = 0: `get_vmmcall_number`: RBX names a NUL-terminated string of at
///   most 255 bytes; RAX becomes its number, or 0 if it is unknown,
///   unreadable, or not terminated within 256 bytes.
/// - RAX = a handler's number: the handler runs if the caller's CPL allows
///   (CPL 0, or any CPL for `user` handlers), else `-EPERM`.
/// - RAX = [`DESCRIBE`]: `vmmcall_describe`, see [`crate::abi::DESCRIBE`]:
///   the number of handlers, or one handler's name and flags.
/// - RAX = [`LOOKUP_TYPED`]: `vmmcall_lookup_typed`, see
///   [`crate::abi::LOOKUP_TYPED`]: the number for the name at RBX if its
///   handler was declared with the signature digest in RCX, 0 for an
///   unknown name, `-EPROTO` for another signature.
/// - RAX = [`BATCH`]: `vmmcall_batch`, see [`crate::abi::BATCH`]: the
///   entries of a list, each answered as alone.
/// - A `long` handler, or a batch, may yield between steps
///   ([`crate::step`]): [`Outcome::pending`], RAX not written, RIP to be
///   left on the instruction.
/// - Any other RAX: `-ENOSYS`.
///
/// Only RAX is written; every other register is left as the guest had it.
///
/// Generic over the vCPU type so that a VMM's concrete vCPU is read with
/// static calls on the hot path; `&mut dyn Vcpu` works too.
/// `#[inline(always)]`: it belongs in the VMM's run loop, where the
/// fields of [`Outcome`] the VMM does not read are never computed.
#[inline(always)]
pub fn dispatch<V: Vcpu + ?Sized>(registry: &Registry<'static>, vcpu: &mut V) -> Outcome {
    let number = vcpu.rax();
    // One bounds check finds a handler: number 0 (get_vmmcall_number) is
    // outside 1..=len like any unknown number, so the functions that are
    // not handlers are told apart only after the miss.
    let Some(handler) = registry.get(number) else {
        if number == GET_VMMCALL_NUMBER {
            return function_zero(registry, vcpu.as_dyn_vcpu());
        }
        // DESCRIBE is never a handler's number, so the hot path pays
        // nothing for it.
        if number == DESCRIBE {
            return describe(registry, vcpu.as_dyn_vcpu());
        }
        if number == LOOKUP_TYPED {
            return lookup_typed(registry, vcpu.as_dyn_vcpu());
        }
        if number == BATCH {
            return crate::batch::batch(registry, vcpu);
        }
        return no_such_function(vcpu.as_dyn_vcpu(), number);
    };
    // One compare tells the common handler (`user`, not `long`) from the
    // others: kernel-only and long handlers branch off out of the way.
    if !handler.plain_user() {
        // A `user` handler may be called from any CPL, so only a
        // kernel-only one needs the CPL (which a lazy `GuestVcpu` reads
        // only now).
        if !handler.user() {
            let cpl = vcpu.cpl();
            if cpl != 0 {
                return refused(registry, vcpu.as_dyn_vcpu(), handler, number, cpl);
            }
        }
        if handler.is_long() {
            return long_call(registry, vcpu.as_dyn_vcpu(), handler, number);
        }
    }
    // The hot path (a handler runs) stays small: everything else is out of
    // line, so this needs few registers and a small stack frame.
    // Counted in the calling vCPU's shard: no cache line is written by
    // two vCPUs (a constant shard for a vCPU type without an id).
    // SAFETY: `registry.get(number)` found `handler`.
    unsafe { registry.count_unchecked(number, vcpu.vcpu_id()) };
    let mut caller = Caller::new(vcpu.as_dyn_vcpu(), number);
    let result = handler.invoke(&mut caller);
    let stop = caller.stop_requested();
    vcpu.set_rax(match result {
        Ok(v) => v,
        Err(e) => e.to_rax(),
    });
    Outcome {
        number,
        name: Some(handler.name()),
        result,
        stop,
        pending: false,
    }
}

/// A `long` handler, privilege already checked: in steps when the VMM
/// provides a [`Stepper`](crate::step::Stepper), else in one exit. Out of
/// line: the plain call never pays for it.
#[inline(never)]
fn long_call(
    registry: &Registry<'static>,
    vcpu: &mut dyn Vcpu,
    handler: &'static Handler,
    number: u64,
) -> Outcome {
    let (args, cpl, id) = (vcpu.args(), vcpu.cpl(), vcpu.vcpu_id());
    let in_batch = match vcpu.stepper() {
        None => None,
        Some(st) => {
            let conts_in_batch = st.continuations().in_batch();
            if conts_in_batch {
                // An entry of a batch: the batch's slot holds its progress.
                Some((true, !st.continuations().entry_resumed()))
            } else {
                let key = Key {
                    number,
                    args,
                    cpl,
                    handler: core::ptr::from_ref(handler) as usize,
                    site: st.site(),
                };
                Some((false, st.continuations().begin(key) == Begin::New))
            }
        }
    };
    // Counted once per call, in the exit it starts in.
    if in_batch.is_none_or(|(_, new)| new) {
        registry.count(number, id);
    }
    let mut caller = Caller::new(vcpu, number);
    let result = handler.invoke(&mut caller);
    let stop = caller.stop_requested();
    let yielded = match (in_batch, vcpu.stepper()) {
        (Some((true, _)), Some(st)) => st.continuations().yielded(),
        (Some((false, _)), Some(st)) => st.continuations().end(),
        _ => false,
    };
    if yielded {
        return Outcome {
            number,
            name: Some(handler.name()),
            result: Err(Error::Busy),
            stop,
            pending: true,
        };
    }
    let mut done = answer(vcpu, number, Some(handler.name()), result);
    done.stop = stop;
    done
}

/// Function 0, out of line: its 256-byte name buffer and logging would
/// otherwise weigh on every other call's stack frame.
#[inline(never)]
fn function_zero(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> Outcome {
    let value = get_vmmcall_number(registry, vcpu);
    answer(vcpu, GET_VMMCALL_NUMBER, None, Ok(value))
}

/// Write `result` to RAX (`-errno` for an error) and say so: the answer of
/// function 0, the built-in functions and `-EPERM`, where no handler ran
/// (`no_such_function` writes its constants itself).
pub(crate) fn answer(
    vcpu: &mut dyn Vcpu,
    number: u64,
    name: Option<&'static str>,
    result: Result<u64, Error>,
) -> Outcome {
    vcpu.set_rax(match result {
        Ok(v) => v,
        Err(e) => e.to_rax(),
    });
    Outcome {
        number,
        name,
        result,
        stop: None,
        pending: false,
    }
}

/// `-ENOSYS` for a number no handler has.
#[cold]
#[inline(never)]
fn no_such_function(vcpu: &mut dyn Vcpu, number: u64) -> Outcome {
    guest_log!(log::Level::Debug, "vmmcall: no function {number:#x}");
    // Written out rather than through `answer`: constants here keep the
    // -ENOSYS path two instructions shorter (docs/BENCHMARKS.md).
    vcpu.set_rax(Error::NoSys.to_rax());
    Outcome {
        number,
        name: None,
        result: Err(Error::NoSys),
        stop: None,
        pending: false,
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
    guest_log!(
        log::Level::Debug,
        "vmmcall {}: refused at CPL {cpl}",
        handler.name()
    );
    registry.count(number, vcpu.vcpu_id());
    answer(vcpu, number, Some(handler.name()), Err(Error::Permission))
}

/// Function 0: the number for the name at RBX, 0 if there is none.
fn get_vmmcall_number(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> u64 {
    let mut buf = [0u8; NAME_BUF_LEN];
    name_at_rbx(vcpu, &mut buf, "get_vmmcall_number")
        .and_then(|name| registry.lookup(name))
        .map_or(0, |n| n.get())
}

/// The NUL-terminated name at RBX (both lookups), read with the caller's
/// privilege into `buf`; `None` (logged, for `function`) when it cannot be
/// read or has no NUL within `buf`: the lookups then answer 0.
fn name_at_rbx<'b>(vcpu: &mut dyn Vcpu, buf: &'b mut [u8], function: &str) -> Option<&'b [u8]> {
    let addr = GuestAddr(vcpu.gpr(Gpr::Rbx));
    match read_cstr(vcpu, addr, buf) {
        Ok(name) => Some(name),
        Err(e) => {
            guest_log!(log::Level::Debug, "{function}: name at {addr:?}: {e:?}");
            None
        }
    }
}

/// `vmmcall_lookup_typed`, out of line like function 0.
#[inline(never)]
fn lookup_typed(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> Outcome {
    let result = lookup_typed_value(registry, vcpu);
    answer(vcpu, LOOKUP_TYPED, None, result)
}

/// What `vmmcall_lookup_typed` answers (docs/ABI.md): the number, 0 for
/// a name no handler has (or one that cannot be read, as function 0),
/// `-EPROTO` when the handler's declared signature is not RCX, except for
/// a kernel-only handler asked for from CPL > 0, which gets its number as
/// from function 0 (its call answers `-EPERM`).
fn lookup_typed_value(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> Result<u64, Error> {
    let signature = vcpu.gpr(Gpr::Rcx);
    let mut buf = [0u8; NAME_BUF_LEN];
    let Some(name) = name_at_rbx(vcpu, &mut buf, "vmmcall_lookup_typed") else {
        return Ok(0);
    };
    match registry.lookup_typed(name, signature) {
        TypedLookup::Found(n) => Ok(n.get()),
        TypedLookup::NotFound => Ok(0),
        // A kernel-only handler, asked for from CPL > 0: answer as function
        // 0 does, without comparing. Calling it answers -EPERM whatever the
        // signature, so nothing runs with the wrong registers, and ring 3
        // cannot learn the signature of a handler it may not call by
        // guessing digests.
        TypedLookup::Mismatch {
            number,
            user: false,
            ..
        } if vcpu.cpl() != 0 => Ok(number.get()),
        TypedLookup::Mismatch { declared, .. } => {
            let name = core::str::from_utf8(name).unwrap_or("<not UTF-8>");
            match declared {
                Some(d) => guest_log!(
                    log::Level::Warn,
                    "vmmcall_lookup_typed: {name:?} has signature {d:#018x}; the guest was built against {signature:#018x} (-EPROTO)"
                ),
                None => guest_log!(
                    log::Level::Warn,
                    "vmmcall_lookup_typed: {name:?} has no declared signature; the guest asked for {signature:#018x} (-EPROTO)"
                ),
            }
            Err(Error::Mismatch)
        }
    }
}

/// `vmmcall_describe`, out of line like function 0.
#[inline(never)]
fn describe(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> Outcome {
    let result = describe_value(registry, vcpu);
    answer(vcpu, DESCRIBE, None, result)
}

/// What `vmmcall_describe` answers (docs/ABI.md):
/// - RBX = 0: the number of handlers;
/// - RBX = n, a handler's number: its name's length, [`DESCRIBE_USER`] and
///   [`DESCRIBE_TYPED`];
///   with RDX != 0 the name and a NUL go to RCX, all or nothing. A CPL > 0
///   caller describing a handler that is not `user` gets `-EPERM`, the
///   answer a call would get, and nothing is written;
/// - any other RBX: `-ENOSYS`, the answer a call would get.
///
/// The VMM never counts a description as a call of the handler.
fn describe_value(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> Result<u64, Error> {
    let [n, buf, len, _, _] = vcpu.args();
    if n == 0 {
        // At most u32::MAX handlers (Registry::new), so this always fits.
        return u64::try_from(registry.len()).map_err(|_| Error::Overflow);
    }
    let handler = registry.get(n).ok_or(Error::NoSys)?;
    if vcpu.cpl() != 0 && !handler.user() {
        return Err(Error::Permission);
    }
    let name = handler.name().as_bytes();
    // Names are 1..=255 bytes (Registry::new checks), so the length and
    // the flags never overlap and never reach the error range.
    let mut value = u64::try_from(name.len()).map_err(|_| Error::Overflow)?;
    if handler.user() {
        value |= DESCRIBE_USER;
    }
    if handler.signature().is_some() {
        value |= DESCRIBE_TYPED;
    }
    if handler.is_long() {
        value |= DESCRIBE_LONG;
    }
    if len == 0 {
        return Ok(value);
    }
    if len <= value & crate::abi::DESCRIBE_NAME_LEN {
        return Err(Error::NoSpace);
    }
    // The name and its NUL, at most 256 bytes, all or nothing: a write
    // checks every translation before it stores a byte, but a page that
    // translates to memory outside guest RAM fails only when it is
    // reached. Reading the range first finds those (every writable page
    // is readable, at the same CPL), so the write cannot fail half-way.
    let mut out = [0u8; NAME_BUF_LEN];
    let with_nul = out.get_mut(..=name.len()).ok_or(Error::NoSpace)?;
    let fault = |e: crate::MemError| {
        guest_log!(
            log::Level::Debug,
            "vmmcall_describe: name buffer at {buf:#x}: {e}"
        );
        Error::Fault
    };
    vcpu.read_linear(GuestAddr(buf), with_nul).map_err(fault)?;
    with_nul.fill(0);
    // The last byte stays 0: the NUL.
    for (to, from) in with_nul.iter_mut().zip(name) {
        *to = *from;
    }
    vcpu.write_linear(GuestAddr(buf), with_nul).map_err(fault)?;
    Ok(value)
}
