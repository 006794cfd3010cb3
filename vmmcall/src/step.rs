//! Long calls in steps: the VMM-side state of calls that yielded to the
//! guest before they finished (docs/ABI.md, "Long calls";
//! docs/DECISIONS.md, "Continuations and batches").
//!
//! A handler declared `long` does its work in steps of at most one page
//! and calls [`Caller::step`](crate::Caller::step) between them. When the
//! guest has an interrupt pending, or the exit's budget of steps is spent,
//! `step` says so; the handler returns, and [`dispatch`](fn@crate::dispatch)
//! answers [`Outcome::pending`](crate::Outcome::pending): the VMM leaves
//! RIP on the hypercall instruction and RAX as it was, and the guest calls
//! again by executing it again after its interrupt handler.
//!
//! The progress is kept here, in the VMM, never in guest memory: a
//! [`Continuations`] per vCPU with [`CONTINUATION_SLOTS`] slots, each keyed
//! by the call's registers, CPL, handler and [`Site`] (RIP and paging).
//! A re-executed call continues only when all of them are the same;
//! anything else is a new call. The VMM provides it through a
//! [`Stepper`] ([`Vcpu::stepper`](crate::Vcpu::stepper), usually
//! [`InVm::with_stepper`](crate::InVm::with_stepper)); without one, long
//! calls run to the end in one exit.
//!
//! ```
//! use vmmcall::step::{Continuations, Site, Stepper};
//! use vmmcall::{dispatch, mock::MockVcpu, Caller, Error, GuestAddr, InVm, Registry};
//!
//! /// Fills `len` bytes at `addr` with `byte`, one page per step.
//! #[vmmcall::vmmcall("fill_pages", user, long)]
//! fn fill_pages(cx: &mut Caller, addr: GuestAddr, len: u64, byte: u8) -> Result<u64, Error> {
//!     let [mut done, ..] = cx.progress();
//!     while done < len {
//!         let at = addr.get().wrapping_add(done);
//!         let n = (4096 - at % 4096).min(len - done);
//!         cx.write(GuestAddr(at), &[byte; 4096][..n as usize])?;
//!         done += n;
//!         if done < len {
//!             cx.step([done, 0, 0, 0])?;
//!         }
//!     }
//!     Ok(len)
//! }
//!
//! /// The VMM's side: its per-vCPU state, the call's site, and whether
//! /// the guest has an interrupt waiting (here: always).
//! struct Vmm { conts: Continuations }
//! impl Stepper for Vmm {
//!     fn continuations(&mut self) -> &mut Continuations { &mut self.conts }
//!     fn site(&mut self) -> Site { Site { rip: 0x1000, paging_root: 0, paging_mode: 0 } }
//!     fn interrupt_pending(&mut self) -> bool { true }
//! }
//!
//! # fn main() {
//! let registry = Registry::global().unwrap();
//! let mut vmm = Vmm { conts: Continuations::new() };
//! let mut vcpu = MockVcpu::new();
//! vcpu.map(0x4000, true, true).map(0x5000, true, true);
//! vcpu.regs.rax = registry.lookup(b"fill_pages").unwrap().get();
//! (vcpu.regs.rbx, vcpu.regs.rcx, vcpu.regs.rdx) = (0x4000, 0x2000, 0xAB);
//! let mut exits = 0;
//! loop {
//!     exits += 1;
//!     let out = dispatch(registry, &mut InVm::new(&mut vcpu, 0).with_stepper(&mut vmm));
//!     if !out.pending {
//!         break;
//!     }
//!     // RIP stays; the guest takes its interrupt and executes the call again.
//! }
//! assert_eq!((exits, vcpu.regs.rax), (2, 0x2000));
//! assert_eq!(vcpu.peek(0x4000, 0x2000), vec![0xAB; 0x2000]);
//! # }
//! ```

use crate::abi::MAX_ARGS;

/// A batch descriptor as the VMM keeps it: number, five arguments.
pub(crate) type Desc = [u64; 1 + MAX_ARGS];

/// Batch descriptors read from guest memory at once.
pub(crate) const BATCH_GROUP: usize = 32;

/// Words of progress a step-wise handler keeps between steps.
pub const PROGRESS_WORDS: usize = 4;

/// Long calls that can be in progress on one vCPU at once (a long call
/// from an interrupt handler that interrupted another, and so on). One
/// more evicts the least recently continued, which then starts again from
/// its beginning when re-executed.
pub const CONTINUATION_SLOTS: usize = 4;

/// Steps per exit unless the VMM sets another budget: 256 steps of at
/// most one 4 KiB page each, 1 MiB of memory work.
pub const DEFAULT_STEP_BUDGET: u32 = 256;

/// Where a call was made: what the VMM reads at the exit, besides the
/// registers, to tell the same call from another. Read only for long calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Site {
    /// The guest's RIP at the hypercall instruction.
    pub rip: u64,
    /// The paging root: CR3.
    pub paging_root: u64,
    /// The paging mode, as the VMM encodes it (vmm-core: CR0.PG, CR4.PAE,
    /// CR4.LA57 and EFER.LMA): any value that changes when the mode does.
    pub paging_mode: u64,
}

/// What the VMM provides for long calls on one vCPU, at one exit.
pub trait Stepper {
    /// This vCPU's continuation state (the same object at every exit).
    fn continuations(&mut self) -> &mut Continuations;
    /// Where the current call was made.
    fn site(&mut self) -> Site;
    /// Whether the guest has an interrupt waiting that it could take now
    /// (asked after every step; a VMM answers from its vendor's state:
    /// SVM V_IRQ or a pending physical interrupt, VMX an interrupt window
    /// or an external interrupt). `false` makes long calls yield only
    /// when the budget is spent.
    fn interrupt_pending(&mut self) -> bool;

    /// A step of the running long call is done: say whether it must yield
    /// now (the budget is spent, or
    /// [`interrupt_pending`](Stepper::interrupt_pending)), and if so keep
    /// its `progress` in the [`continuations`](Stepper::continuations),
    /// from which it continues when the guest makes it again.
    /// [`Caller::step`](crate::Caller::step) calls it. Provided, and
    /// there is no reason to override it: being a method of the VMM's
    /// type, it reaches the continuations and the interrupt check with
    /// static calls, so a step costs one dynamic call instead of three.
    #[inline]
    fn step_done(&mut self, progress: [u64; PROGRESS_WORDS]) -> bool {
        let yields = match self.continuations().step() {
            AfterStep::Go => false,
            AfterStep::Yield => true,
            AfterStep::AskInterrupt => {
                let pending = self.interrupt_pending();
                if pending {
                    self.continuations().yield_now();
                }
                pending
            }
        };
        if yields {
            self.continuations().keep(progress);
        }
        yields
    }
}

/// What makes a re-executed call the same call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Key {
    pub(crate) number: u64,
    pub(crate) args: [u64; MAX_ARGS],
    pub(crate) cpl: u8,
    /// The handler's address (0 for `vmmcall_batch`): a VMM that swaps a
    /// VM's registry between steps gets a new call, not another handler's
    /// progress.
    pub(crate) handler: usize,
    pub(crate) site: Site,
}

/// One call in progress.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    live: bool,
    key: Key,
    /// The handler's own progress (of the batch entry in progress, in a
    /// batch).
    progress: [u64; PROGRESS_WORDS],
    /// A batch: the entries answered so far.
    next: u64,
    /// A batch: the descriptors of entries `next ..` already read from
    /// guest memory (at most a group), kept so that none is read twice.
    ahead: [Desc; BATCH_GROUP],
    /// How many of `ahead` are valid.
    ahead_len: usize,
    /// A batch: `ahead[0]` is an entry in progress (its progress is
    /// `progress`).
    started: bool,
    /// When it last ran (for eviction).
    used: u64,
}

/// The long calls in progress on one vCPU, kept by the VMM (one per
/// vCPU, for the vCPU's life). See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Continuations {
    slots: [Slot; CONTINUATION_SLOTS],
    budget: u32,
    clock: u64,
    /// The slot of the call running in this exit, if it is a long call.
    active: Option<usize>,
    /// Steps taken in this exit.
    spent: u32,
    /// The running call asked to yield.
    yielded: bool,
    /// The running handler is `long` (only then does `step` yield).
    stepping: bool,
    /// The running call is a batch (long entries use its slot).
    in_batch: bool,
    /// The batch entry running now continues one that yielded.
    entry_resumed: bool,
}

impl Default for Continuations {
    fn default() -> Self {
        Self::new()
    }
}

/// How a call found its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// A new call.
    New,
    /// It continues one that yielded.
    Resumed,
}

impl Continuations {
    /// No call in progress, budget [`DEFAULT_STEP_BUDGET`].
    pub const fn new() -> Self {
        const EMPTY: Slot = Slot {
            live: false,
            key: Key {
                number: 0,
                args: [0; MAX_ARGS],
                cpl: 0,
                handler: 0,
                site: Site {
                    rip: 0,
                    paging_root: 0,
                    paging_mode: 0,
                },
            },
            progress: [0; PROGRESS_WORDS],
            next: 0,
            ahead: [[0; 1 + MAX_ARGS]; BATCH_GROUP],
            ahead_len: 0,
            started: false,
            used: 0,
        };
        Continuations {
            slots: [EMPTY; CONTINUATION_SLOTS],
            budget: DEFAULT_STEP_BUDGET,
            clock: 0,
            active: None,
            spent: 0,
            yielded: false,
            stepping: false,
            in_batch: false,
            entry_resumed: false,
        }
    }

    /// Steps per exit (at least 1).
    pub fn budget(&self) -> u32 {
        self.budget
    }

    /// Set the steps per exit; 0 counts as 1 (every exit runs a step, so a
    /// guest with interrupts masked still finishes).
    pub fn set_budget(&mut self, steps: u32) {
        self.budget = steps.max(1);
    }

    /// The budget, set: `Continuations::new().with_budget(64)`.
    pub fn with_budget(mut self, steps: u32) -> Self {
        self.set_budget(steps);
        self
    }

    /// How many calls are in progress (yielded, not yet finished).
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.live).count()
    }

    /// Forget every call in progress (a vCPU reset: INIT, a new guest).
    pub fn clear(&mut self) {
        *self = Continuations::new().with_budget(self.budget);
    }

    /// Start running the long call `key` in this exit: its slot, continued
    /// if a live one has the key, else a fresh one (a free slot or the
    /// least recently used, evicted). A batch starts with
    /// [`batch_begin`](Self::batch_begin) instead.
    pub(crate) fn begin(&mut self, key: Key) -> Begin {
        self.start_exit(false);
        if self.find(&key) {
            Begin::Resumed
        } else {
            self.take_slot(key);
            Begin::New
        }
    }

    /// Reset the per-exit state for a call starting in this exit.
    fn start_exit(&mut self, batch: bool) {
        self.clock = self.clock.wrapping_add(1);
        self.spent = 0;
        self.yielded = false;
        self.in_batch = batch;
        self.stepping = !batch;
        self.entry_resumed = false;
        self.active = None;
    }

    /// Make the live slot with `key` the running one, if there is one: a
    /// call, or a batch, that yielded and is made again continues.
    pub(crate) fn find(&mut self, key: &Key) -> bool {
        let clock = self.clock;
        match self.slots.iter().position(|s| s.live && s.key == *key) {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i) {
                    s.used = clock;
                }
                self.active = Some(i);
                true
            }
            None => false,
        }
    }

    /// Give the running call a fresh slot for `key`: a free one, or the
    /// least recently used, evicted.
    fn take_slot(&mut self, key: Key) {
        let victim = self
            .slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| (s.live, s.used))
            .map_or(0, |(i, _)| i);
        if let Some(s) = self.slots.get_mut(victim) {
            *s = Slot {
                live: true,
                key,
                used: self.clock,
                ..Slot::default()
            };
        }
        self.active = Some(victim);
    }

    /// A batch starts running in this exit, without a slot: it takes one
    /// only when it must keep something (a long entry's progress, or its
    /// position when it yields), so that a batch that finishes in one exit
    /// never pays for one. `true` if some batch is in progress on this
    /// vCPU, which this one may continue ([`find`](Self::find)).
    pub(crate) fn batch_begin(&mut self) -> bool {
        self.start_exit(true);
        self.slots
            .iter()
            .any(|s| s.live && s.key.number == crate::abi::BATCH)
    }

    /// The running batch keeps something: it takes a slot for `key` unless
    /// it has one.
    pub(crate) fn batch_attach(&mut self, key: Key) {
        if self.active.is_none() {
            self.take_slot(key);
        }
    }

    /// The running batch ends this exit, `pending` if it yielded: `true` if
    /// its slot stays for the next exit; otherwise the slot (if it took
    /// one) is freed.
    pub(crate) fn batch_end(&mut self, pending: bool) -> bool {
        if pending {
            self.end()
        } else {
            self.abandon();
            false
        }
    }

    /// The running call ended this exit: `true` if it yielded (its slot
    /// stays), else it finished and its slot is freed.
    pub(crate) fn end(&mut self) -> bool {
        let yielded = self.yielded;
        if let Some(s) = self.active.and_then(|i| self.slots.get_mut(i)) {
            if !yielded {
                s.live = false;
            }
        }
        self.active = None;
        self.stepping = false;
        self.in_batch = false;
        self.yielded = false;
        yielded
    }

    /// The running call ended without anything to continue (it failed
    /// after a step had asked to yield): its slot is freed.
    pub(crate) fn abandon(&mut self) {
        self.yielded = false;
        self.end();
    }

    fn slot(&mut self) -> Option<&mut Slot> {
        let i = self.active?;
        self.slots.get_mut(i)
    }

    /// The progress the running call stored at its last step, zeros for a
    /// new call (or outside a long call).
    pub(crate) fn progress(&self) -> [u64; PROGRESS_WORDS] {
        match self.active.and_then(|i| self.slots.get(i)) {
            Some(s) if self.stepping => s.progress,
            _ => [0; PROGRESS_WORDS],
        }
    }

    /// One step done: say what comes next. The progress is kept only
    /// when the call yields ([`keep`](Self::keep)): a call that goes on
    /// stores it at a later step, or finishes and needs none.
    pub(crate) fn step(&mut self) -> AfterStep {
        if !self.stepping || self.active.is_none() {
            return AfterStep::Go;
        }
        self.after_step()
    }

    /// The running call yields after a step: keep its `progress`.
    pub(crate) fn keep(&mut self, progress: [u64; PROGRESS_WORDS]) {
        if let Some(s) = self.slot() {
            s.progress = progress;
        }
    }

    fn after_step(&mut self) -> AfterStep {
        self.spent = self.spent.saturating_add(1);
        if self.spent >= self.budget {
            self.yielded = true;
            AfterStep::Yield
        } else {
            AfterStep::AskInterrupt
        }
    }

    /// The running call yields now: the guest has an interrupt pending,
    /// or a batch spent its budget (it yields only between groups).
    pub(crate) fn yield_now(&mut self) {
        if self.active.is_some() {
            self.yielded = true;
        }
    }

    /// Whether the running call asked to yield.
    pub(crate) fn yielded(&self) -> bool {
        self.yielded
    }

    /// Whether a batch is running (long entries use its slot).
    pub(crate) fn in_batch(&self) -> bool {
        self.in_batch && self.active.is_some()
    }

    /// A batch: the entries answered so far, the descriptors already read
    /// after them, and whether the first of those is in progress.
    pub(crate) fn batch_position(&self, ahead: &mut [Desc]) -> (u64, usize, bool) {
        match self.active.and_then(|i| self.slots.get(i)) {
            Some(s) => {
                let kept = s.ahead.get(..s.ahead_len).unwrap_or_default();
                for (to, from) in ahead.iter_mut().zip(kept) {
                    *to = *from;
                }
                (s.next, s.ahead_len.min(ahead.len()), s.started)
            }
            None => (0, 0, false),
        }
    }

    /// A batch yields: `next` entries are answered, `ahead` are the
    /// descriptors read after them, the first in progress if `started`.
    pub(crate) fn batch_save(&mut self, next: u64, ahead: &[Desc], started: bool) {
        if let Some(s) = self.slot() {
            s.next = next;
            s.ahead_len = 0;
            for (to, from) in s.ahead.iter_mut().zip(ahead) {
                *to = *from;
                s.ahead_len = s.ahead_len.saturating_add(1);
            }
            s.started = started && s.ahead_len > 0;
        }
    }

    /// A batch starts an entry: fresh progress unless it `resumed` the
    /// entry in progress; `long`: its handler works in steps.
    pub(crate) fn batch_entry(&mut self, long: bool, resumed: bool) {
        if !resumed {
            if let Some(s) = self.slot() {
                s.progress = [0; PROGRESS_WORDS];
            }
        }
        self.entry_resumed = resumed;
        self.stepping = long;
    }

    /// Whether the batch entry running now continues one that yielded (it
    /// was counted then).
    pub(crate) fn entry_resumed(&self) -> bool {
        self.entry_resumed
    }

    /// A long batch entry finished (it did not yield): the entries after
    /// it run without steps of their own, from fresh progress.
    pub(crate) fn batch_entry_done(&mut self) {
        self.stepping = false;
        self.entry_resumed = false;
        if let Some(s) = self.slot() {
            s.progress = [0; PROGRESS_WORDS];
        }
    }

    /// A batch finished a group of `entries` entries, `next` are
    /// answered: each entry counts one step against the budget, and the
    /// group is where the batch may yield (docs/ABI.md, "`vmmcall_batch`",
    /// Long).
    pub(crate) fn batch_step(&mut self, next: u64, entries: u32) -> AfterStep {
        if let Some(s) = self.slot() {
            s.next = next;
        }
        self.spent = self.spent.saturating_add(entries.saturating_sub(1));
        self.after_step()
    }
}

/// What a call does after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterStep {
    /// Not a step-wise call: go on, nothing was counted.
    Go,
    /// The budget is spent: yield (already recorded).
    Yield,
    /// Within the budget: yield if the guest has an interrupt pending
    /// ([`Continuations::yield_now`]).
    AskInterrupt,
}
