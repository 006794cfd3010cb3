//! `vmmcall_batch`: many calls in one exit (docs/ABI.md, "Function
//! `1 << 40 | 2`: `vmmcall_batch`").
//!
//! The descriptors are copied into the VMM in groups of [`GROUP`] before
//! they run and used from the copy. Each entry is then answered exactly
//! as it would be alone (privilege, `-ENOSYS`, the built-in functions,
//! call counts, `stop`): a plain handler the caller may call runs at once
//! on an [`EntryVcpu`] (the calling vCPU with RAX and the argument
//! registers replaced by the descriptor's); everything else goes through
//! [`dispatch()`] on the same view.
//!
//! Guest memory is reached through translations made once per page and
//! exit ([`Vcpu::translate`], then [`Vcpu::read_phys`] and
//! [`Vcpu::write_phys`]), or through guest-physical addresses when a CPL 0
//! caller passes [`BATCH_PHYSICAL`]: a batch walks the guest's page tables
//! once for each page of its list and results, not once per access.
//!
//! Each entry is one step of a long batch's budget ([`crate::step`]); a
//! batch checks for an interrupt, and yields, only between groups (and
//! inside a long entry). When a batch yields, the descriptors it read and
//! has not finished (a long entry in progress and the rest of its group)
//! are kept in the VMM's continuation slot: no descriptor is ever read
//! twice. A batch takes a
//! slot only when it must keep something, so one that ends in its exit
//! costs no slot and no [`Stepper::site`].

use crate::abi::{
    is_error, BATCH, BATCH_ENTRY_SIZE, BATCH_MAX_ENTRIES, BATCH_PHYSICAL, BATCH_STOP_ON_ERROR,
    MAX_ARGS,
};
use crate::budget::guest_log;
use crate::step::{AfterStep, Desc, Key, Stepper, BATCH_GROUP};
use crate::{
    dispatch, Caller, Error, Gpr, GuestAddr, GuestRegs, MemError, Outcome, Registers, Registry,
    Vcpu,
};
use core::any::Any;
use core::cell::Cell;
use core::mem::MaybeUninit;

/// Descriptors copied from guest memory at once (1 536 bytes of VMM stack).
const GROUP: usize = BATCH_GROUP;

/// Bytes per page: the unit of translations and of guest-physical copies.
const PAGE: u64 = 4096;

/// Pages the results of the largest batch touch: 4096 × 8 bytes, 8 pages,
/// 9 when they do not start on a page boundary.
const RESULT_PAGES: usize = (BATCH_MAX_ENTRIES as usize * 8) / PAGE as usize + 1;

/// How a batch ended in this exit.
enum Ended {
    /// Every entry it will answer was answered: RAX = that many.
    Done { answered: u64, stop: Option<u32> },
    /// It yielded between steps: RIP and RAX stay.
    Pending { stop: Option<u32> },
}

/// `vmmcall_batch` on the calling vCPU (any CPL: each entry is checked).
///
/// Generic over the VMM's vCPU type (out of line, once per type): the
/// batch reaches the vCPU's registers and memory with static calls.
#[inline(never)]
pub(crate) fn batch<V: Vcpu + ?Sized>(registry: &Registry<'static>, vcpu: &mut V) -> Outcome {
    let result = run(registry, vcpu);
    let pending = matches!(result, Ok(Ended::Pending { .. }));
    // Whatever happened, the slot of a batch that did not yield is free.
    let kept = match vcpu.stepper() {
        Some(st) => st.continuations().batch_end(pending),
        None => false,
    };
    let (result, stop) = match result {
        Ok(Ended::Pending { stop }) if kept => {
            return Outcome {
                number: BATCH,
                name: None,
                result: Err(Error::Busy),
                stop,
                pending: true,
            };
        }
        // Pending without a slot cannot happen (a batch takes one before
        // it yields); answer rather than leave the guest looping.
        Ok(Ended::Pending { stop }) => (Err(Error::Fault), stop),
        Ok(Ended::Done { answered, stop }) => (Ok(answered), stop),
        Err(e) => {
            guest_log!(log::Level::Debug, "vmmcall_batch: {e:?}");
            (Err(e), None)
        }
    };
    vcpu.set_rax(match result {
        Ok(v) => v,
        Err(e) => e.to_rax(),
    });
    Outcome {
        number: BATCH,
        name: None,
        result,
        stop,
        pending: false,
    }
}

/// The last byte of `[addr, addr + len)`, `len > 0`, or `-EFAULT` if the
/// range wraps around the address space.
fn last_byte(addr: u64, len: u64) -> Result<u64, Error> {
    addr.checked_add(len.wrapping_sub(1)).ok_or(Error::Fault)
}

/// What stays the same for the whole batch in this exit.
struct Batch {
    /// RBX, RCX, RDX, RSI, RDI as the guest passed them.
    args: [u64; MAX_ARGS],
    cpl: u8,
    /// [`BATCH_PHYSICAL`]: the addresses are guest-physical.
    physical: bool,
    /// [`BATCH_STOP_ON_ERROR`].
    stop_on_error: bool,
}

impl Batch {
    /// What makes a re-executed batch the same one ([`crate::step`]).
    fn key(&self, st: &mut dyn Stepper) -> Key {
        Key {
            number: BATCH,
            args: self.args,
            cpl: self.cpl,
            handler: 0,
            site: st.site(),
        }
    }

    /// The guest-physical address of `la` for a read (`write`: a write):
    /// `la` itself in physical mode, else its translation.
    fn gpa<V: Vcpu + ?Sized>(&self, vcpu: &mut V, la: u64, write: bool) -> Result<u64, MemError> {
        if self.physical {
            Ok(la)
        } else {
            vcpu.translate(GuestAddr(la), write)
        }
    }
}

fn run<V: Vcpu + ?Sized>(registry: &Registry<'static>, vcpu: &mut V) -> Result<Ended, Error> {
    let args = vcpu.args();
    let [list, count, results, flags, _] = args;
    if flags & !(BATCH_STOP_ON_ERROR | BATCH_PHYSICAL) != 0 || count > BATCH_MAX_ENTRIES {
        return Err(Error::Invalid);
    }
    if count == 0 {
        return Ok(Ended::Done {
            answered: 0,
            stop: None,
        });
    }
    // count <= 4096: neither product overflows.
    let list_last = last_byte(list, count.wrapping_mul(BATCH_ENTRY_SIZE))?;
    let results_last = last_byte(results, count.wrapping_mul(8))?;
    if list <= results_last && results <= list_last {
        return Err(Error::Invalid);
    }
    let cpl = vcpu.cpl();
    let batch = Batch {
        args,
        cpl,
        physical: flags & BATCH_PHYSICAL != 0,
        stop_on_error: flags & BATCH_STOP_ON_ERROR != 0,
    };
    // Guest-physical addresses are the kernel's to name: the guest's page
    // tables are what keeps ring 3 from the rest of its memory.
    if batch.physical && cpl != 0 {
        return Err(Error::Permission);
    }
    // Where this exit starts: entry 0 of a new batch, or where a batch
    // that yielded stopped, with the descriptors it had read after that
    // (the first one in progress if `started`).
    let mut storage = MaybeUninit::<[Desc; GROUP]>::uninit();
    // No group of this exit is larger than its first (at most GROUP
    // entries): only that many descriptors are zeroed, once.
    let largest = usize::try_from(count).map_or(GROUP, |c| c.min(GROUP));
    let all = zeroed(&mut storage, largest);
    let (start, mut kept, mut started) = match vcpu.stepper() {
        Some(st) => resume(st, &batch, all),
        None => (0, 0, false),
    };
    // Check first: every remaining result can be written now.
    let out = Results::check(vcpu, &batch, results, start, count)?;
    // A list on the results' first page is read through their
    // translation (a page writable at a CPL is readable there).
    let mut list_page = PageCache {
        page: out.pages.first().map(|gpa| (out.first_page, *gpa)),
    };
    let id = vcpu.vcpu_id();
    // Each group's results, written by `run_group` before `out.write`
    // reads them: never zeroed.
    let mut values = [MaybeUninit::<u64>::uninit(); GROUP];
    let mut i = start;
    while i < count {
        let group = usize::try_from(count.wrapping_sub(i)).map_or(GROUP, |left| left.min(GROUP));
        let descs = all.get_mut(..group).unwrap_or_default();
        // Descriptors kept from the last exit first, then fresh ones.
        read_group(vcpu, &batch, &mut list_page, i, kept.min(group), descs)?;
        kept = 0;
        let resumed = core::mem::take(&mut started);
        let (answered_here, ended) =
            run_group(registry, vcpu, &batch, i, descs, &mut values, resumed, id);
        // SAFETY: `run_group` wrote `values[..answered_here]` (it returns
        // how many entries it answered, each result written first).
        let answers = unsafe { written(&mut values, answered_here) };
        out.write(vcpu, i, answers)?;
        if let Some(ended) = ended {
            return Ok(ended);
        }
        i = i.wrapping_add(group as u64);
        if i < count && group_done(vcpu, &batch, i, group as u32) {
            return Ok(Ended::Pending { stop: None });
        }
    }
    Ok(Ended::Done {
        answered: count,
        stop: None,
    })
}

/// Run the entries `first ..` of one group (`descs`), their results into
/// `values`; `resumed`: the first continues an entry in progress. Returns
/// how many it answered, `n`, and how the batch ends if it ends here:
/// `values[..n]` are written.
///
/// One [`Caller`] on one [`EntryVcpu`] serves the whole group: between
/// entries only the registers the view shows ([`EntryRegs`]) and the
/// caller's function number change.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn run_group<V: Vcpu + ?Sized>(
    registry: &Registry<'static>,
    vcpu: &mut V,
    batch: &Batch,
    first: u64,
    descs: &[Desc],
    values: &mut [MaybeUninit<u64>; GROUP],
    mut resumed: bool,
    id: u32,
) -> (usize, Option<Ended>) {
    let Some(desc0) = descs.first() else {
        return (0, None);
    };
    let regs = EntryRegs {
        desc: Cell::new(desc0),
        rax: Cell::new(0),
    };
    let mut entry = EntryVcpu {
        inner: vcpu,
        regs: &regs,
    };
    let mut caller = Caller::new(&mut entry, 0);
    for (j, (desc, value)) in descs.iter().zip(values.iter_mut()).enumerate() {
        let [number, ..] = *desc;
        regs.desc.set(desc);
        regs.rax.set(number);
        let (result, stop) = match registry.runs_at_once(number, batch.cpl == 0) {
            // What `dispatch` would do, without its detours.
            Some(h) => {
                // SAFETY: `registry.get(number)` found `h`.
                unsafe { registry.count_unchecked(number, id) };
                caller.next_call(number);
                let result = h.invoke(&mut caller);
                (result, caller.stop_requested())
            }
            None => match other_entry(registry, caller.vcpu(), batch, resumed) {
                Ok(answer) => answer,
                Err(stop) => {
                    // It yielded: it and the rest of the group wait, read.
                    let index = first.wrapping_add(j as u64);
                    save(caller.vcpu(), index, descs.get(j..), true);
                    return (j, Some(Ended::Pending { stop }));
                }
            },
        };
        resumed = false;
        let raw = match result {
            Ok(v) => v,
            Err(e) => e.to_rax(),
        };
        value.write(raw);
        if stop.is_some() || (batch.stop_on_error && is_error(raw)) {
            let answered = j.wrapping_add(1);
            let ended = Ended::Done {
                answered: first.wrapping_add(answered as u64),
                stop,
            };
            return (answered, Some(ended));
        }
    }
    // `descs` has at most GROUP entries: the loop answered every one.
    (descs.len().min(GROUP), None)
}

/// What an entry answered, and the stop its handler asked for.
type Answer = (Result<u64, Error>, Option<u32>);

/// An entry that does not simply run, on `vcpu` (the entry's view: RAX is
/// its number): a built-in function, an unknown number, a handler the
/// caller may not call (each answered by [`dispatch()`] as alone), the
/// batch itself (`-EINVAL`: no nesting, so no recursion and a bounded
/// VMM stack), or a long handler, which may yield: `Err` then, with the
/// stop its handler asked for (`resumed`: it continues the entry in
/// progress). Out of line, so that the loop over plain entries stays
/// small.
#[inline(never)]
fn other_entry(
    registry: &Registry<'static>,
    vcpu: &mut dyn Vcpu,
    batch: &Batch,
    resumed: bool,
) -> Result<Answer, Option<u32>> {
    let number = vcpu.rax();
    if number == BATCH {
        return Ok((Err(Error::Invalid), None));
    }
    let long = registry.get(number).is_some_and(|h| h.is_long());
    if long {
        if let Some(st) = vcpu.stepper() {
            let key = batch.key(st);
            let conts = st.continuations();
            conts.batch_attach(key);
            conts.batch_entry(true, resumed);
        }
    }
    let done = dispatch(registry, vcpu);
    if done.pending {
        return Err(done.stop);
    }
    if long {
        if let Some(st) = vcpu.stepper() {
            st.continuations().batch_entry_done();
        }
    }
    Ok((done.result, done.stop))
}

/// A batch starts in this exit: where it continues a batch that yielded
/// (the entries answered, the descriptors kept in `descs`, and whether the
/// first of those is in progress), or `(0, 0, false)` for a new one.
fn resume(st: &mut dyn Stepper, batch: &Batch, descs: &mut [Desc]) -> (u64, usize, bool) {
    if !st.continuations().batch_begin() {
        return (0, 0, false);
    }
    let key = batch.key(st);
    let conts = st.continuations();
    if conts.find(&key) {
        conts.batch_position(descs)
    } else {
        (0, 0, false)
    }
}

/// A group of `entries` entries ended with `next` answered and more to
/// come: a step per entry, and the place to yield. `true` if the batch
/// yields now (the budget is spent, or the guest has an interrupt to
/// take); it then keeps its position.
fn group_done<V: Vcpu + ?Sized>(vcpu: &mut V, batch: &Batch, next: u64, entries: u32) -> bool {
    let Some(st) = vcpu.stepper() else {
        return false;
    };
    let go = match st.continuations().batch_step(next, entries) {
        AfterStep::Go => false,
        AfterStep::Yield => true,
        AfterStep::AskInterrupt => st.interrupt_pending(),
    };
    if go {
        let key = batch.key(st);
        let conts = st.continuations();
        conts.batch_attach(key);
        conts.batch_save(next, &[], false);
        conts.yield_now();
    }
    go
}

/// A batch yields at entry `next`: keep the descriptors already read from
/// there on (`started`: the first is in progress).
fn save<V: Vcpu + ?Sized>(vcpu: &mut V, next: u64, ahead: Option<&[Desc]>, started: bool) {
    if let Some(st) = vcpu.stepper() {
        st.continuations()
            .batch_save(next, ahead.unwrap_or_default(), started);
    }
}

fn fault(what: &str, e: MemError) -> Error {
    guest_log!(log::Level::Debug, "vmmcall_batch: {what}: {e}");
    Error::Fault
}

/// The last page of the list translated in this exit.
struct PageCache {
    /// (linear page, its guest-physical page), if any.
    page: Option<(u64, u64)>,
}

/// `count` zeroed descriptors at the start of `storage` (at most
/// [`GROUP`]): the buffer a batch reads its groups into, zeroed only as
/// far as it is used.
fn zeroed(storage: &mut MaybeUninit<[Desc; GROUP]>, count: usize) -> &mut [Desc] {
    let count = count.min(GROUP);
    let first = storage.as_mut_ptr().cast::<Desc>();
    zero_prefix(storage, count.saturating_mul(core::mem::size_of::<Desc>()));
    // SAFETY: `zero_prefix` zeroed at least `count * 48` bytes of
    // `storage` (count <= GROUP), so the first `count` descriptors are
    // initialized (all zeros is a valid `[u64; 6]`) and inside
    // `storage`, which the slice borrows exclusively.
    unsafe { core::slice::from_raw_parts_mut(first, count) }
}

/// Zero the first `len` bytes of `storage`, rounded up to a multiple of
/// 64 (but not past its end): `memset` (compiler-builtins) stores 64
/// bytes per loop and the rest one byte at a time with `rep stosb`, a
/// tick per byte under Bochs, so 48 bytes cost more than 64.
fn zero_prefix<T>(storage: &mut MaybeUninit<T>, len: usize) {
    let size = core::mem::size_of::<T>();
    let len = len.div_ceil(64).saturating_mul(64).min(size);
    // SAFETY: `len <= size_of::<T>()`: the bytes are inside `storage`,
    // which is valid for writes; any bytes are a valid `MaybeUninit`.
    unsafe { core::ptr::write_bytes(storage.as_mut_ptr().cast::<u8>(), 0, len) };
}

/// The first `n` of `values` (at most [`GROUP`]), as the words
/// [`run_group`] wrote there.
///
/// # Safety
///
/// `values[..n]` (`n` capped at [`GROUP`]) must be initialized: `n` is
/// what `run_group` returned for these `values`.
unsafe fn written(values: &mut [MaybeUninit<u64>; GROUP], n: usize) -> &mut [u64] {
    let n = n.min(GROUP);
    // SAFETY: the caller promises `values[..n]` initialized, `n <= GROUP`
    // keeps the slice inside the array, `MaybeUninit<u64>` has the layout
    // of `u64`, and the slice borrows `values` exclusively.
    unsafe { core::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u64>(), n) }
}

/// The bytes of `words`, to copy guest memory into or out of directly.
fn bytes_of(words: &mut [u64]) -> &mut [u8] {
    let len = core::mem::size_of_val(words);
    // SAFETY: the `len` bytes of `words` are initialized and exclusively
    // borrowed for the returned lifetime; `u8` needs no alignment, and
    // any bytes written through the slice leave valid `u64`s (every bit
    // pattern is one).
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
}

/// Copy the descriptors of entries `first + from ..` into `descs[from..]`,
/// page by page, each byte once.
fn read_group<V: Vcpu + ?Sized>(
    vcpu: &mut V,
    batch: &Batch,
    cache: &mut PageCache,
    first: u64,
    from: usize,
    descs: &mut [Desc],
) -> Result<(), Error> {
    let Some(todo) = descs.get_mut(from..) else {
        return Ok(());
    };
    let words = todo.as_flattened_mut();
    let bytes = bytes_of(words);
    let len = bytes.len();
    let [list, ..] = batch.args;
    let la = list.wrapping_add(
        first
            .wrapping_add(from as u64)
            .wrapping_mul(BATCH_ENTRY_SIZE),
    );
    // `[list, list + count * 48)` does not wrap (checked): neither does
    // any part of it.
    let mut done = 0usize;
    while done < len {
        let at = la.wrapping_add(done as u64);
        let in_page = usize::try_from(PAGE.wrapping_sub(at % PAGE)).unwrap_or(usize::MAX);
        let n = in_page.min(len.wrapping_sub(done));
        let page = at & !(PAGE - 1);
        let gpa_page = match cache.page {
            Some((la_page, gpa_page)) if la_page == page => gpa_page,
            _ => {
                let gpa = batch.gpa(vcpu, page, false).map_err(|e| fault("list", e))?;
                cache.page = Some((page, gpa));
                gpa
            }
        };
        let window = bytes
            .get_mut(done..done.wrapping_add(n))
            .ok_or(Error::Invalid)?;
        vcpu.read_phys(gpa_page | (at % PAGE), window)
            .map_err(|e| fault("list", e))?;
        done = done.wrapping_add(n);
    }
    // The guest's descriptors are little-endian (nothing to do on x86).
    for word in words.iter_mut() {
        *word = u64::from_le(*word);
    }
    Ok(())
}

/// The results area of the entries that remain in this exit, its pages
/// translated and checked before any entry runs (check first), then
/// written through those translations.
struct Results {
    /// The results area's address, as the guest passed it.
    results: u64,
    /// The linear (or physical) page of the first remaining result.
    first_page: u64,
    /// The guest-physical page of each page from `first_page` on.
    pages: [u64; RESULT_PAGES],
}

impl Results {
    /// Translate and check, for a write, the results of entries `start ..
    /// count` (`start < count <= 4096`; the area does not wrap).
    fn check<V: Vcpu + ?Sized>(
        vcpu: &mut V,
        batch: &Batch,
        results: u64,
        start: u64,
        count: u64,
    ) -> Result<Results, Error> {
        let from = results.wrapping_add(start.wrapping_mul(8));
        let end = results.wrapping_add(count.wrapping_mul(8));
        let mut out = Results {
            results,
            first_page: from & !(PAGE - 1),
            pages: [0; RESULT_PAGES],
        };
        // Counted in bytes left, not compared with the end: an area that
        // ends on the last page of the address space has its next page
        // wrap to 0 (found by the hostile storm, results at the top at
        // CPL 3).
        let (mut at, mut left) = (from, end.wrapping_sub(from));
        for gpa_page in out.pages.iter_mut() {
            if left == 0 {
                break;
            }
            let page = at & !(PAGE - 1);
            let n = PAGE.wrapping_sub(at % PAGE).min(left);
            let gpa = batch
                .gpa(vcpu, page, true)
                .map_err(|e| fault("results", e))?;
            vcpu.check_phys(gpa | (at % PAGE), n as usize)
                .map_err(|e| fault("results", e))?;
            *gpa_page = gpa;
            at = at.wrapping_add(n);
            left = left.wrapping_sub(n);
        }
        Ok(out)
    }

    /// Write the results of entries `first ..`, page by page.
    fn write<V: Vcpu + ?Sized>(
        &self,
        vcpu: &mut V,
        first: u64,
        values: &mut [u64],
    ) -> Result<(), Error> {
        // Little-endian in guest memory (nothing to do on x86).
        for v in values.iter_mut() {
            *v = v.to_le();
        }
        let bytes = bytes_of(values);
        let len = bytes.len();
        let la = self.results.wrapping_add(first.wrapping_mul(8));
        let mut done = 0usize;
        while done < len {
            let at = la.wrapping_add(done as u64);
            let in_page = usize::try_from(PAGE.wrapping_sub(at % PAGE)).unwrap_or(usize::MAX);
            let n = in_page.min(len.wrapping_sub(done));
            let k = usize::try_from(at.wrapping_sub(self.first_page) / PAGE).unwrap_or(usize::MAX);
            let gpa_page = self.pages.get(k).ok_or(Error::Fault)?;
            let data = bytes
                .get(done..done.wrapping_add(n))
                .ok_or(Error::Invalid)?;
            vcpu.write_phys(gpa_page | (at % PAGE), data)
                .map_err(|e| fault("results", e))?;
            done = done.wrapping_add(n);
        }
        Ok(())
    }
}

/// The registers of the entry running now, which the group's
/// [`EntryVcpu`] shows: its descriptor (RAX, RBX, RCX, RDX, RSI, RDI) and
/// RAX as its call sees it (its number, then its result). Cells, so that
/// the loop sets them for each entry while a [`Caller`] holds the view.
struct EntryRegs<'d> {
    desc: Cell<&'d Desc>,
    rax: Cell<u64>,
}

/// The calling vCPU as one entry of a batch sees it: RAX and the argument
/// registers are the entry's ([`EntryRegs`]), everything else (other
/// registers, CPL, memory, ids, state, steps) the caller's. Writes to RAX
/// (the entry's result) stay here.
struct EntryVcpu<'v, 'd, V: ?Sized> {
    inner: &'v mut V,
    regs: &'v EntryRegs<'d>,
}

impl<V: ?Sized> EntryVcpu<'_, '_, V> {
    /// The descriptor word that stands for `reg` (not RAX), if any.
    #[inline]
    fn index(reg: Gpr) -> Option<usize> {
        match reg {
            Gpr::Rbx => Some(1),
            Gpr::Rcx => Some(2),
            Gpr::Rdx => Some(3),
            Gpr::Rsi => Some(4),
            Gpr::Rdi => Some(5),
            _ => None,
        }
    }
}

impl<V: Vcpu + ?Sized> Registers for EntryVcpu<'_, '_, V> {
    #[inline]
    fn gpr(&self, reg: Gpr) -> u64 {
        if reg == Gpr::Rax {
            return self.regs.rax.get();
        }
        match Self::index(reg).and_then(|i| self.regs.desc.get().get(i)) {
            Some(v) => *v,
            None => self.inner.gpr(reg),
        }
    }
    #[inline]
    fn set_gpr(&mut self, reg: Gpr, value: u64) {
        // Only RAX is ever written (the entry's result); the guest's other
        // registers are not the entry's to change.
        if reg == Gpr::Rax {
            self.regs.rax.set(value);
        }
    }
    #[inline]
    fn rax(&self) -> u64 {
        self.regs.rax.get()
    }
    #[inline]
    fn set_rax(&mut self, value: u64) {
        self.regs.rax.set(value);
    }
    #[inline]
    fn args(&self) -> [u64; MAX_ARGS] {
        let [_, a, b, c, d, e] = *self.regs.desc.get();
        [a, b, c, d, e]
    }
    fn snapshot(&self) -> GuestRegs {
        let mut r = self.inner.snapshot();
        for g in [Gpr::Rax, Gpr::Rbx, Gpr::Rcx, Gpr::Rdx, Gpr::Rsi, Gpr::Rdi] {
            r.set(g.encoding(), self.gpr(g));
        }
        r
    }
}

impl<V: Vcpu + ?Sized> Vcpu for EntryVcpu<'_, '_, V> {
    #[inline]
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
    #[inline]
    fn vcpu_id(&self) -> u32 {
        self.inner.vcpu_id()
    }
    fn vm_state(&self) -> Option<&(dyn Any + Sync)> {
        self.inner.vm_state()
    }
    fn vcpu_state(&mut self) -> Option<&mut dyn Any> {
        self.inner.vcpu_state()
    }
    #[inline]
    fn stepper(&mut self) -> Option<&mut dyn Stepper> {
        self.inner.stepper()
    }
    fn translate(&mut self, addr: GuestAddr, write: bool) -> Result<u64, MemError> {
        self.inner.translate(addr, write)
    }
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.inner.read_phys(gpa, buf)
    }
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.inner.write_phys(gpa, data)
    }
    fn check_phys(&mut self, gpa: u64, len: usize) -> Result<(), MemError> {
        self.inner.check_phys(gpa, len)
    }
}
