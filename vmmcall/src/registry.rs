//! The handler registry: every `#[vmmcall]` function, numbered and indexed.
//!
//! Handlers land in the [`HANDLERS`] linker-section slice (`linkme`), in
//! whatever order the linker chose. [`Registry::new`] puts them in a stable
//! order once:
//!
//! - **Numbers** are 1-based positions in the handlers sorted by name (byte
//!   order), so one set of handlers always gets the same numbers. Number 0 is
//!   `get_vmmcall_number`. Dispatch by number is one bounds check and one
//!   index: O(1).
//! - **Lookup by name** goes through an open-addressing hash table (FNV-1a,
//!   load factor <= 1/2) built next to the sorted array: O(1) expected, and
//!   independent of the number of handlers (BitVisor does a linear `strcmp`
//!   scan). There is no cap on the number of handlers.
//! - **Per-VM policy**: [`Registry::restricted`] and [`Registry::allow_only`]
//!   make a VM's own registry, holding only the handlers that VM may call
//!   (numbered among themselves). The VMM dispatches that VM's calls with it;
//!   to the VM, a handler left out does not exist (docs/ABI.md, "Per-VM
//!   policy").
//! - **Call counts** are kept per registry, in [`COUNTER_SHARDS`] shards: a
//!   call counts in the shard of its vCPU ([`Vcpu::vcpu_id`](crate::Vcpu::vcpu_id)),
//!   and no two shards share a cache line, so vCPUs calling at the same
//!   moment never write one line. [`Registry::calls`] adds the shards up.

extern crate alloc;

// FNV-1a (64-bit) for the name table: names are short and hashed once per
// lookup; FNV has no per-process key, which is fine: the table is built
// from the VMM's own names, a guest can only choose what to look up.
use crate::abi::{fnv1a64, GET_VMMCALL_NUMBER_NAME, MAX_NAME_LEN};
use crate::{Caller, Error};
use alloc::vec::Vec;
use core::fmt;
use core::num::NonZeroU64;
use core::sync::atomic::{AtomicU64, Ordering};

/// How many shards a registry's call counters have: a call on vCPU `id`
/// counts in shard `id % COUNTER_SHARDS`. vCPUs with distinct shards never
/// write the same cache line; more vCPUs than shards share them, still
/// exactly (the counters are atomic).
pub const COUNTER_SHARDS: usize = 16;

/// `u64`s per cache line (64 bytes on x86-64).
const LINE_U64S: usize = 8;

/// The type-erased entry point the `#[vmmcall]` macro generates for a
/// handler: it unpacks the argument registers, calls the function, and packs
/// its result.
pub type HandlerFn = fn(&mut Caller<'_>) -> Result<u64, Error>;

/// One registered hypercall. Made by the `#[vmmcall]` macro; see
/// [`macro@crate::vmmcall`].
pub struct Handler {
    name: &'static str,
    /// [`FLAG_USER`] and [`FLAG_LONG`].
    flags: u8,
    /// `user` and not `long`: its own byte, so that dispatch's hot path
    /// tells the common handler from the others with one compare of
    /// memory (docs/DECISIONS.md, "Continuations and batches").
    plain_user: bool,
    func: HandlerFn,
    /// The declared signature's digest ([`crate::abi::signature_digest`]),
    /// 0 for a handler without a declaration (plain `#[vmmcall]`).
    signature: u64,
}

impl Handler {
    /// A handler named `name`, callable from ring 3 when `user` is true.
    ///
    /// The `#[vmmcall]` macro checks the name at compile time; a handler made
    /// by hand with a bad name is refused by [`Registry::new`].
    pub const fn new(name: &'static str, user: bool, func: HandlerFn) -> Self {
        Handler {
            name,
            flags: user_flag(user),
            plain_user: user,
            func,
            signature: 0,
        }
    }

    /// This handler, declared `long`: it works in steps
    /// ([`Caller::step`](crate::Caller::step)) and may yield to the guest
    /// between them (docs/ABI.md, "Long calls"). `#[vmmcall("name", long)]`
    /// and `#[long]` in an interface make it.
    pub const fn long(mut self) -> Self {
        self.flags |= FLAG_LONG;
        self.plain_user = false;
        self
    }

    /// A handler declared in an interface (`vmmcall::interface!`), whose
    /// signature has the digest `signature` (never 0). Made by the
    /// `#[vmmcall]` attribute on an interface's `impl`; a typed lookup
    /// (`vmmcall_lookup_typed`) finds it only with that digest.
    pub const fn typed(name: &'static str, user: bool, func: HandlerFn, signature: u64) -> Self {
        Handler {
            name,
            flags: user_flag(user),
            plain_user: user,
            func,
            signature,
        }
    }

    /// The digest of the declared signature, or `None` for a handler
    /// registered without an interface declaration.
    pub fn signature(&self) -> Option<u64> {
        match self.signature {
            0 => None,
            s => Some(s),
        }
    }

    /// The hypercall's name.
    #[inline]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether ring-3 callers may call it.
    #[inline]
    pub fn user(&self) -> bool {
        self.flags & FLAG_USER != 0
    }

    /// Whether it is declared `long` (works in steps, [`Handler::long`]).
    #[inline]
    pub fn is_long(&self) -> bool {
        self.flags & FLAG_LONG != 0
    }

    /// Whether it is a `user` handler that is not `long`: the only kind
    /// dispatch runs without looking further.
    #[inline]
    pub(crate) fn plain_user(&self) -> bool {
        self.plain_user
    }

    /// Run the handler on `caller`. [`dispatch`](fn@crate::dispatch) counts
    /// the call in its registry ([`Registry::calls`]) first.
    #[inline]
    pub fn invoke(&self, caller: &mut Caller<'_>) -> Result<u64, Error> {
        (self.func)(caller)
    }
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("name", &self.name)
            .field("user", &self.user())
            .field("long", &self.is_long())
            .field("signature", &self.signature())
            .finish()
    }
}

/// [`Handler::flags`]: any CPL may call it.
const FLAG_USER: u8 = 1;
/// [`Handler::flags`]: it works in steps.
const FLAG_LONG: u8 = 2;

const fn user_flag(user: bool) -> u8 {
    if user {
        FLAG_USER
    } else {
        0
    }
}

/// The answer of [`Registry::lookup_typed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypedLookup {
    /// The handler's number: its name and signature match.
    Found(NonZeroU64),
    /// No handler has the name.
    NotFound,
    /// A handler has the name, but was declared with another signature
    /// (`declared`), or without one (`None`).
    Mismatch {
        /// The handler's number.
        number: NonZeroU64,
        /// Whether any CPL may call it.
        user: bool,
        /// The handler's own digest, if it has one.
        declared: Option<u64>,
    },
}

/// Every handler in the final image, collected by the linker.
#[linkme::distributed_slice]
pub static HANDLERS: [Handler];

/// Why a set of handlers cannot form a registry. These are VMM build
/// errors, never caused by a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryError {
    /// Two handlers share a name (the `#[vmmcall]` macro makes this a link
    /// error; this catches handlers made by hand).
    Duplicate(&'static str),
    /// A name is empty, longer than 255 bytes, contains NUL, or is the
    /// reserved `get_vmmcall_number`.
    BadName(&'static str),
    /// More handlers than fit a `u32` index (4 294 967 295).
    TooMany,
    /// [`Registry::allow_only`] named a hypercall the registry does not
    /// have (a typo in the VMM's policy).
    Unknown(&'static str),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Duplicate(n) => write!(f, "two hypercalls are named {n:?}"),
            RegistryError::BadName(n) => write!(f, "invalid hypercall name {n:?}"),
            RegistryError::TooMany => write!(f, "too many hypercalls for a u32 index"),
            RegistryError::Unknown(n) => write!(f, "no hypercall is named {n:?}"),
        }
    }
}

impl core::error::Error for RegistryError {}

/// Whether `name` is acceptable as a hypercall name (ABI v1): 1..=255 bytes,
/// no NUL, not the reserved `get_vmmcall_number`.
///
/// This is the rule. The `#[vmmcall]` macro checks the same rule itself, to
/// point its error at the name (a proc-macro crate cannot call this one:
/// vmmcall depends on it), and its expansion asserts this function on the
/// name at compile time, so the two cannot disagree unnoticed.
pub const fn valid_name(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    let mut rest = name;
    while let [b, tail @ ..] = rest {
        if *b == 0 {
            return false;
        }
        rest = tail;
    }
    !bytes_eq(name, GET_VMMCALL_NUMBER_NAME.as_bytes())
}

/// `a == b`, in a `const fn`.
const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a, b);
    while let ([x, a_tail @ ..], [y, b_tail @ ..]) = (a, b) {
        if *x != *y {
            return false;
        }
        (a, b) = (a_tail, b_tail);
    }
    true
}

/// One hash-table slot. It holds the handler's name itself, so a probe
/// reads the slot and the name bytes (two memory accesses), not the slot,
/// `sorted`, the handler and the name (four): with many handlers each of
/// those is a cache and TLB miss.
#[derive(Clone, Copy)]
struct Slot {
    /// The handler's name (empty in an empty slot).
    name: &'static str,
    /// The handler's number; 0 = empty slot.
    number: u32,
    /// The upper half of the name's hash: most non-matching slots are
    /// skipped without reading their name.
    tag: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        name: "",
        number: 0,
        tag: 0,
    };
}

/// The upper half of a 64-bit hash (the lower bits pick the slot).
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// Numbered, name-indexed handlers. See the module docs.
pub struct Registry<'h> {
    /// Handlers sorted by name; number `n` is `sorted[n - 1]`.
    sorted: Vec<&'h Handler>,
    /// Hash slots ([`Slot::number`] 0 = empty); length is a power of two.
    table: Vec<Slot>,
    /// Call counts: shard `s`, handler number `n` at
    /// `counts[s * stride + n - 1]`.
    counts: Vec<AtomicU64>,
    /// Counters per shard, with at least a cache line of unused ones after
    /// the handlers' so that two shards never share a line wherever the
    /// allocation starts.
    stride: usize,
}

impl<'h> Registry<'h> {
    /// Number, index and check `handlers`.
    pub fn new(handlers: &'h [Handler]) -> Result<Self, RegistryError> {
        if u32::try_from(handlers.len()).is_err() {
            return Err(RegistryError::TooMany);
        }
        let mut sorted: Vec<&'h Handler> = handlers.iter().collect();
        sorted.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Self::from_sorted(sorted)
    }

    /// A registry of `sorted` (sorted by name), checked and indexed.
    fn from_sorted(sorted: Vec<&'h Handler>) -> Result<Self, RegistryError> {
        if u32::try_from(sorted.len()).is_err() {
            return Err(RegistryError::TooMany);
        }
        for h in &sorted {
            if !valid_name(h.name.as_bytes()) {
                return Err(RegistryError::BadName(h.name));
            }
        }
        for pair in sorted.windows(2) {
            if let [a, b] = pair {
                if a.name == b.name {
                    return Err(RegistryError::Duplicate(a.name));
                }
            }
        }
        let slots = sorted
            .len()
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .ok_or(RegistryError::TooMany)?
            .max(8);
        let mut table = alloc::vec![Slot::EMPTY; slots];
        let mask = slots.wrapping_sub(1);
        for (i, h) in sorted.iter().enumerate() {
            let number = u32::try_from(i.wrapping_add(1)).map_err(|_| RegistryError::TooMany)?;
            let hash = fnv1a64(h.name.as_bytes());
            let mut slot = (hash as usize) & mask;
            // Load factor <= 1/2, so an empty slot exists and this ends.
            loop {
                match table.get_mut(slot) {
                    Some(s) if s.number == 0 => {
                        *s = Slot {
                            name: h.name,
                            number,
                            tag: tag_of(hash),
                        };
                        break;
                    }
                    _ => slot = slot.wrapping_add(1) & mask,
                }
            }
        }
        let stride = sorted
            .len()
            .checked_next_multiple_of(LINE_U64S)
            .and_then(|n| n.checked_add(LINE_U64S))
            .ok_or(RegistryError::TooMany)?;
        let cells = stride
            .checked_mul(COUNTER_SHARDS)
            .ok_or(RegistryError::TooMany)?;
        let counts = (0..cells).map(|_| AtomicU64::new(0)).collect();
        Ok(Registry {
            sorted,
            table,
            counts,
            stride,
        })
    }

    /// A registry for one VM: the handlers of this one that `allow`
    /// accepts, numbered among themselves, with counts of their own. The
    /// VMM dispatches that VM's hypercalls with it; to the VM, a handler
    /// left out does not exist: function 0 and `vmmcall_lookup_typed`
    /// answer 0 for its name, `vmmcall_describe` does not count it, and no
    /// number reaches it (docs/ABI.md, "Per-VM policy").
    ///
    /// ```
    /// # vmmcall::exit_hypercall!();
    /// # #[vmmcall::vmmcall("status", user)] fn status() {}
    /// # fn main() {
    /// use vmmcall::Registry;
    /// let all = Registry::global().unwrap();
    /// let vm = all.restricted(|h| h.name() != "status").unwrap();
    /// assert!(vm.lookup(b"status").is_none());
    /// assert!(vm.lookup(b"exit").is_some());
    /// # }
    /// ```
    pub fn restricted(
        &self,
        mut allow: impl FnMut(&Handler) -> bool,
    ) -> Result<Registry<'h>, RegistryError> {
        let kept = self.sorted.iter().copied().filter(|h| allow(h)).collect();
        Registry::from_sorted(kept)
    }

    /// [`restricted`](Self::restricted) to the handlers named in `names`
    /// (an allow-list); [`RegistryError::Unknown`] for a name this registry
    /// does not have, so that a typo in the policy is found at VM creation.
    pub fn allow_only(&self, names: &[&'static str]) -> Result<Registry<'h>, RegistryError> {
        if let Some(missing) = names.iter().find(|n| self.lookup(n.as_bytes()).is_none()) {
            return Err(RegistryError::Unknown(missing));
        }
        self.restricted(|h| names.contains(&h.name()))
    }

    /// The registry of every `#[vmmcall]` handler linked into this image,
    /// built on first use.
    ///
    /// An `Err` means the image itself is broken (see [`RegistryError`]);
    /// a VMM should report it at boot.
    pub fn global() -> Result<&'static Registry<'static>, RegistryError> {
        static GLOBAL: spin::Once<Result<Registry<'static>, RegistryError>> = spin::Once::new();
        GLOBAL
            .call_once(|| Registry::new(&HANDLERS))
            .as_ref()
            .map_err(|e| *e)
    }

    /// Number of handlers.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are no handlers.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The handler with function number `number` (1-based), if any.
    ///
    /// One bounds check: 0 wraps to `u64::MAX`, which no index reaches.
    #[inline]
    pub fn get(&self, number: u64) -> Option<&'h Handler> {
        let idx = usize::try_from(number.wrapping_sub(1)).ok()?;
        self.sorted.get(idx).copied()
    }

    /// The handler for `number` if a batch entry runs it straight away: it
    /// is not `long`, and a caller at CPL 0 (`kernel`), or any caller for
    /// a `user` handler, may call it. One mask test on the flags.
    #[inline]
    pub(crate) fn runs_at_once(&self, number: u64, kernel: bool) -> Option<&'h Handler> {
        let handler = self.get(number)?;
        let want = if kernel { 0 } else { FLAG_USER };
        (handler.flags & (FLAG_LONG | want) == want).then_some(handler)
    }

    /// The function number of the handler called `name`, if any.
    pub fn lookup(&self, name: &[u8]) -> Option<NonZeroU64> {
        let mask = self.table.len().wrapping_sub(1);
        let hash = fnv1a64(name);
        let tag = tag_of(hash);
        let mut slot = (hash as usize) & mask;
        // At most `table.len()` probes: the table always has empty slots,
        // but bound the loop anyway.
        for _ in 0..self.table.len() {
            let s = self.table.get(slot)?;
            if s.number == 0 {
                return None;
            }
            if s.tag == tag && s.name.as_bytes() == name {
                return NonZeroU64::new(u64::from(s.number));
            }
            slot = slot.wrapping_add(1) & mask;
        }
        None
    }

    /// What a typed lookup (`vmmcall_lookup_typed`, docs/ABI.md) answers
    /// for `name` and the caller's signature digest: the number when the
    /// handler was declared with exactly `signature`,
    /// [`TypedLookup::NotFound`] when no handler has the name,
    /// [`TypedLookup::Mismatch`] when one has it with another signature or
    /// none.
    pub fn lookup_typed(&self, name: &[u8], signature: u64) -> TypedLookup {
        let Some(number) = self.lookup(name) else {
            return TypedLookup::NotFound;
        };
        match self.get(number.get()) {
            Some(h) if h.signature != 0 && h.signature == signature => TypedLookup::Found(number),
            Some(h) => TypedLookup::Mismatch {
                number,
                user: h.user(),
                declared: h.signature(),
            },
            None => TypedLookup::NotFound,
        }
    }

    /// Handlers with their numbers, in number order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &'h Handler)> + '_ {
        (1u64..).zip(self.sorted.iter().copied())
    }

    /// Count a call of handler `number` on vCPU `vcpu_id`, in that vCPU's
    /// shard (nothing for a number no handler has).
    #[inline]
    pub(crate) fn count(&self, number: u64, vcpu_id: u32) {
        if self.get(number).is_some() {
            // SAFETY: `get` found a handler for `number`.
            unsafe { self.count_unchecked(number, vcpu_id) }
        }
    }

    /// [`count`](Self::count) without checking `number`: the dispatch hot
    /// path has just found its handler, and a second bounds check there
    /// cost 2 of its instructions (callgrind, `dispatch_count null`).
    ///
    /// # Safety
    ///
    /// [`get`](Self::get)`(number)` must be `Some`.
    #[inline]
    pub(crate) unsafe fn count_unchecked(&self, number: u64, vcpu_id: u32) {
        let shard = (vcpu_id as usize) % COUNTER_SHARDS;
        let at = (number.wrapping_sub(1) as usize).wrapping_add(shard.wrapping_mul(self.stride));
        // SAFETY: `number - 1 < sorted.len()` (the caller's contract), and
        // `from_sorted` made `stride > sorted.len()` and `counts.len() ==
        // stride * COUNTER_SHARDS`; `shard < COUNTER_SHARDS`, so `at <
        // shard * stride + stride <= counts.len()`.
        let counter = unsafe { self.counts.get_unchecked(at) };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times the handler with function number `number` has been
    /// called through this registry, from every vCPU: calls that ran,
    /// calls refused with `-EPERM` and calls whose arguments did not fit
    /// (0 for a number no handler has). Exact once the calls it should
    /// count have returned; while others run, it may miss those.
    pub fn calls(&self, number: u64) -> u64 {
        let Some(idx) = self
            .get(number)
            .and_then(|_| usize::try_from(number.wrapping_sub(1)).ok())
        else {
            return 0;
        };
        (0..COUNTER_SHARDS)
            .filter_map(|s| {
                self.counts
                    .get(s.wrapping_mul(self.stride).wrapping_add(idx))
            })
            .fold(0u64, |sum, c| sum.wrapping_add(c.load(Ordering::Relaxed)))
    }
}

impl fmt::Debug for Registry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, h)| (n, h.name)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop(_: &mut Caller<'_>) -> Result<u64, Error> {
        Ok(0)
    }

    /// No two shards' counters share a 64-byte cache line, wherever the
    /// allocation starts, for registries of every size around a line.
    #[test]
    fn shards_never_share_a_cache_line() {
        let names: Vec<&'static str> = (0..20)
            .map(|i| &*alloc::boxed::Box::leak(alloc::format!("h{i:02}").into_boxed_str()))
            .collect();
        let handlers: Vec<Handler> = names.iter().map(|n| Handler::new(n, true, nop)).collect();
        for len in 0..=handlers.len() {
            let r = Registry::new(&handlers[..len]).expect("valid");
            let line = |shard: usize, idx: usize| {
                let c: *const AtomicU64 = &r.counts[shard * r.stride + idx];
                c as usize / 64
            };
            for s in 1..COUNTER_SHARDS {
                for i in 0..len {
                    for j in 0..len {
                        assert_ne!(line(s - 1, i), line(s, j), "len {len}, shards {s}");
                    }
                }
            }
        }
    }
}
