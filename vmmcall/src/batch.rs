//! `vmmcall_batch`: many calls in one exit (docs/ABI.md, "Function
//! `1 << 40 | 2`: `vmmcall_batch`").
//!
//! Each entry goes through [`dispatch`] itself, on an [`EntryVcpu`]: the
//! calling vCPU with RAX and the argument registers replaced by the
//! entry's descriptor, so an entry is answered exactly as it would be
//! alone (privilege, `-ENOSYS`, the built-in functions, call counts,
//! `stop`). The descriptors are copied into the VMM in groups of
//! [`GROUP`] before they run and used from the copy; when a batch yields,
//! the descriptors it read and has not finished (the entry in progress
//! and the rest of its group) are kept in the VMM's continuation slot
//! ([`crate::step`]): no descriptor is ever read twice.

use crate::abi::{
    is_error, BatchEntry, BATCH, BATCH_ENTRY_SIZE, BATCH_MAX_ENTRIES, BATCH_STOP_ON_ERROR, MAX_ARGS,
};
use crate::budget::guest_log;
use crate::dispatch::answer;
use crate::step::{must_yield, Desc, Key, Stepper, BATCH_GROUP};
use crate::{
    dispatch, Error, Gpr, GuestAddr, GuestRegs, MemError, Outcome, Registers, Registry, Vcpu,
};
use core::any::Any;

/// Descriptors copied from guest memory at once (384 bytes of VMM stack).
const GROUP: usize = BATCH_GROUP;

/// How a batch ended in this exit.
enum Ended {
    /// Every entry it will answer was answered: RAX = that many.
    Done { answered: u64, stop: Option<u32> },
    /// It yielded between steps: RIP and RAX stay.
    Pending { stop: Option<u32> },
}

/// `vmmcall_batch` on the calling vCPU (any CPL: each entry is checked).
#[inline(never)]
pub(crate) fn batch(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> Outcome {
    let result = run(registry, vcpu);
    // Whatever happened, the slot of a batch that did not yield is free.
    let yielded = match vcpu.stepper() {
        Some(st) => {
            let conts = st.continuations();
            if !conts.in_batch() {
                false
            } else if matches!(result, Ok(Ended::Pending { .. })) {
                conts.end()
            } else {
                // Finished, or failed: nothing to continue.
                conts.abandon();
                false
            }
        }
        None => false,
    };
    match result {
        Ok(Ended::Pending { stop }) if yielded => Outcome {
            number: BATCH,
            name: None,
            result: Err(Error::Busy),
            stop,
            pending: true,
        },
        // Pending without a slot cannot happen (only a slot yields);
        // answer what was done rather than leave the guest looping.
        Ok(Ended::Pending { stop }) => {
            let mut out = answer(vcpu, BATCH, None, Err(Error::Fault));
            out.stop = stop;
            out
        }
        Ok(Ended::Done { answered, stop }) => {
            let mut out = answer(vcpu, BATCH, None, Ok(answered));
            out.stop = stop;
            out
        }
        Err(e) => {
            guest_log!(log::Level::Debug, "vmmcall_batch: {e:?}");
            answer(vcpu, BATCH, None, Err(e))
        }
    }
}

/// The last byte of `[addr, addr + len)`, `len > 0`, or `-EFAULT` if the
/// range wraps around the address space.
fn last_byte(addr: u64, len: u64) -> Result<u64, Error> {
    addr.checked_add(len.wrapping_sub(1)).ok_or(Error::Fault)
}

fn run(registry: &Registry<'static>, vcpu: &mut dyn Vcpu) -> Result<Ended, Error> {
    let args = vcpu.args();
    let [list, count, results, flags, _] = args;
    if flags & !BATCH_STOP_ON_ERROR != 0 || count > BATCH_MAX_ENTRIES {
        return Err(Error::Invalid);
    }
    if count == 0 {
        return Ok(Ended::Done {
            answered: 0,
            stop: None,
        });
    }
    let stop_on_error = flags & BATCH_STOP_ON_ERROR != 0;
    // count <= 4096: neither product overflows.
    let list_last = last_byte(list, count.wrapping_mul(BATCH_ENTRY_SIZE))?;
    let results_last = last_byte(results, count.wrapping_mul(8))?;
    if list <= results_last && results <= list_last {
        return Err(Error::Invalid);
    }
    let cpl = vcpu.cpl();
    // Where this exit starts: entry 0 of a new batch, or where a batch
    // that yielded stopped, with the descriptors it had read after that
    // (the first one in progress if `started`).
    let mut descs = [[0u64; 1 + MAX_ARGS]; GROUP];
    let (start, mut kept, mut started, stepping) = match vcpu.stepper() {
        None => (0, 0, false, false),
        Some(st) => {
            let key = Key {
                number: BATCH,
                args,
                cpl,
                handler: 0,
                site: st.site(),
            };
            let conts = st.continuations();
            conts.begin(key, true);
            let (next, kept, started) = conts.batch_position(&mut descs);
            (next, kept, started, true)
        }
    };
    // Check first: every remaining result can be written now.
    let remaining = count.saturating_sub(start);
    let results_at = results.wrapping_add(start.wrapping_mul(8));
    vcpu.check_write(GuestAddr(results_at), remaining.wrapping_mul(8))
        .map_err(|e| fault("results", e))?;
    let mut i = start;
    while i < count {
        let group = usize::try_from(count.wrapping_sub(i)).map_or(GROUP, |left| left.min(GROUP));
        // Descriptors kept from the last exit first, then fresh ones.
        let fresh_from = kept.min(group);
        read_group(
            vcpu,
            list,
            i,
            fresh_from,
            descs.get_mut(..group).unwrap_or_default(),
        )?;
        kept = 0;
        let mut out = [0u64; GROUP];
        let mut answered_here = 0usize;
        let mut ended: Option<Ended> = None;
        for (j, desc) in descs.iter().take(group).enumerate() {
            let index = i.wrapping_add(j as u64);
            let [number, ..] = *desc;
            let resumed = core::mem::take(&mut started);
            let (result, stop) = if number == BATCH {
                // No nested batch: no recursion, a bounded VMM stack.
                (Err(Error::Invalid), None)
            } else {
                if let Some(st) = vcpu.stepper().filter(|_| stepping) {
                    let long = registry.get(number).is_some_and(|h| h.is_long());
                    st.continuations().batch_entry(long, resumed);
                }
                let done = dispatch(
                    registry,
                    &mut EntryVcpu {
                        inner: vcpu,
                        regs: *desc,
                    },
                );
                if done.pending {
                    // This entry and the rest of the group wait, read.
                    save(vcpu, index, descs.get(j..group), true);
                    ended = Some(Ended::Pending { stop: done.stop });
                    break;
                }
                (done.result, done.stop)
            };
            let raw = match result {
                Ok(v) => v,
                Err(e) => e.to_rax(),
            };
            if let Some(slot) = out.get_mut(j) {
                *slot = raw;
            }
            answered_here = j.wrapping_add(1);
            let answered = index.wrapping_add(1);
            if stop.is_some() || (stop_on_error && is_error(raw)) {
                ended = Some(Ended::Done { answered, stop });
                break;
            }
            if answered < count {
                if let Some(st) = vcpu.stepper().filter(|_| stepping) {
                    let after = st.continuations().batch_step(answered);
                    if must_yield(st, after) {
                        let rest = descs.get(answered_here..group);
                        save(vcpu, answered, rest, false);
                        ended = Some(Ended::Pending { stop: None });
                        break;
                    }
                }
            }
        }
        write_results(
            vcpu,
            results,
            i,
            out.get(..answered_here).unwrap_or_default(),
        )?;
        if let Some(ended) = ended {
            return Ok(ended);
        }
        i = i.wrapping_add(group as u64);
    }
    Ok(Ended::Done {
        answered: count,
        stop: None,
    })
}

/// A batch yields at entry `next`: keep the descriptors already read from
/// there on (`started`: the first is in progress).
fn save(vcpu: &mut dyn Vcpu, next: u64, ahead: Option<&[Desc]>, started: bool) {
    if let Some(st) = vcpu.stepper() {
        st.continuations()
            .batch_save(next, ahead.unwrap_or_default(), started);
    }
}

fn fault(what: &str, e: MemError) -> Error {
    guest_log!(log::Level::Debug, "vmmcall_batch: {what}: {e}");
    Error::Fault
}

/// Copy the descriptors of entries `first + from ..` into `descs[from..]`
/// with one read.
fn read_group(
    vcpu: &mut dyn Vcpu,
    list: u64,
    first: u64,
    from: usize,
    descs: &mut [Desc],
) -> Result<(), Error> {
    let Some(todo) = descs.get_mut(from..) else {
        return Ok(());
    };
    if todo.is_empty() {
        return Ok(());
    }
    let mut raw = [0u8; GROUP * BATCH_ENTRY_SIZE as usize];
    let bytes = todo.len().saturating_mul(BATCH_ENTRY_SIZE as usize);
    let window = raw.get_mut(..bytes).ok_or(Error::Invalid)?;
    let at = list.wrapping_add(
        first
            .wrapping_add(from as u64)
            .wrapping_mul(BATCH_ENTRY_SIZE),
    );
    vcpu.read_linear(GuestAddr(at), window)
        .map_err(|e| fault("list", e))?;
    for (desc, bytes) in todo
        .iter_mut()
        .zip(window.chunks_exact(BATCH_ENTRY_SIZE as usize))
    {
        let mut one = [0u8; BATCH_ENTRY_SIZE as usize];
        one.copy_from_slice(bytes);
        let e = BatchEntry::from_bytes(&one);
        *desc = [
            e.number, e.args[0], e.args[1], e.args[2], e.args[3], e.args[4],
        ];
    }
    Ok(())
}

/// Write the results of entries `first ..` with one write.
fn write_results(
    vcpu: &mut dyn Vcpu,
    results: u64,
    first: u64,
    values: &[u64],
) -> Result<(), Error> {
    if values.is_empty() {
        return Ok(());
    }
    let mut raw = [0u8; GROUP * 8];
    for (chunk, v) in raw.chunks_exact_mut(8).zip(values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    let bytes = raw
        .get(..values.len().saturating_mul(8))
        .ok_or(Error::Invalid)?;
    let at = results.wrapping_add(first.wrapping_mul(8));
    vcpu.write_linear(GuestAddr(at), bytes)
        .map_err(|e| fault("results", e))
}

/// The calling vCPU as one entry of a batch sees it: RAX and the argument
/// registers are the entry's, everything else (other registers, CPL,
/// memory, ids, state, steps) the caller's. Writes to RAX (the entry's
/// result) stay here.
struct EntryVcpu<'v> {
    inner: &'v mut dyn Vcpu,
    /// RAX, RBX, RCX, RDX, RSI, RDI.
    regs: Desc,
}

impl EntryVcpu<'_> {
    fn index(reg: Gpr) -> Option<usize> {
        match reg {
            Gpr::Rax => Some(0),
            Gpr::Rbx => Some(1),
            Gpr::Rcx => Some(2),
            Gpr::Rdx => Some(3),
            Gpr::Rsi => Some(4),
            Gpr::Rdi => Some(5),
            _ => None,
        }
    }
}

impl Registers for EntryVcpu<'_> {
    fn gpr(&self, reg: Gpr) -> u64 {
        match Self::index(reg).and_then(|i| self.regs.get(i)) {
            Some(v) => *v,
            None => self.inner.gpr(reg),
        }
    }
    fn set_gpr(&mut self, reg: Gpr, value: u64) {
        // Only RAX is ever written (the entry's result); the guest's other
        // registers are not the entry's to change.
        if let Some(v) = Self::index(reg).and_then(|i| self.regs.get_mut(i)) {
            *v = value;
        }
    }
    fn snapshot(&self) -> GuestRegs {
        let mut r = self.inner.snapshot();
        for g in [Gpr::Rax, Gpr::Rbx, Gpr::Rcx, Gpr::Rdx, Gpr::Rsi, Gpr::Rdi] {
            r.set(g.encoding(), self.gpr(g));
        }
        r
    }
}

impl Vcpu for EntryVcpu<'_> {
    fn cpl(&self) -> u8 {
        self.inner.cpl()
    }
    fn read_linear(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), MemError> {
        self.inner.read_linear(addr, buf)
    }
    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError> {
        self.inner.write_linear(addr, data)
    }
    fn write_linear_all(&mut self, writes: &[(GuestAddr, &[u8])]) -> Result<(), MemError> {
        self.inner.write_linear_all(writes)
    }
    fn vcpu_id(&self) -> u32 {
        self.inner.vcpu_id()
    }
    fn vm_state(&self) -> Option<&(dyn Any + Sync)> {
        self.inner.vm_state()
    }
    fn vcpu_state(&mut self) -> Option<&mut dyn Any> {
        self.inner.vcpu_state()
    }
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        self.inner.stepper()
    }
    fn check_write(&mut self, addr: GuestAddr, len: u64) -> Result<(), MemError> {
        self.inner.check_write(addr, len)
    }
}
