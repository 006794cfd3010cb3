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

/// The type-erased entry point the `#[vmmcall]` macro generates for a
/// handler: it unpacks the argument registers, calls the function, and packs
/// its result.
pub type HandlerFn = fn(&mut Caller<'_>) -> Result<u64, Error>;

/// One registered hypercall. Made by the `#[vmmcall]` macro; see
/// [`macro@crate::vmmcall`].
pub struct Handler {
    name: &'static str,
    user: bool,
    func: HandlerFn,
    calls: AtomicU64,
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
            user,
            func,
            calls: AtomicU64::new(0),
            signature: 0,
        }
    }

    /// A handler declared in an interface (`vmmcall::interface!`), whose
    /// signature has the digest `signature` (never 0). Made by the
    /// `#[vmmcall]` attribute on an interface's `impl`; a typed lookup
    /// (`vmmcall_lookup_typed`) finds it only with that digest.
    pub const fn typed(name: &'static str, user: bool, func: HandlerFn, signature: u64) -> Self {
        Handler {
            name,
            user,
            func,
            calls: AtomicU64::new(0),
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
        self.user
    }

    /// How many times it has been called (successfully or not), counting
    /// calls refused with `-EPERM` and calls whose arguments did not fit.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Run the handler on `caller`, counting the call.
    #[inline]
    pub fn invoke(&self, caller: &mut Caller<'_>) -> Result<u64, Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        (self.func)(caller)
    }

    fn count_refused(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("signature", &self.signature())
            .field("calls", &self.calls())
            .finish()
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
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Duplicate(n) => write!(f, "two hypercalls are named {n:?}"),
            RegistryError::BadName(n) => write!(f, "invalid hypercall name {n:?}"),
            RegistryError::TooMany => write!(f, "too many hypercalls for a u32 index"),
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
}

impl<'h> Registry<'h> {
    /// Number, index and check `handlers`.
    pub fn new(handlers: &'h [Handler]) -> Result<Self, RegistryError> {
        if u32::try_from(handlers.len()).is_err() {
            return Err(RegistryError::TooMany);
        }
        let mut sorted: Vec<&'h Handler> = handlers.iter().collect();
        sorted.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
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
        Ok(Registry { sorted, table })
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

    /// Record a call that was refused before reaching the handler
    /// (privilege, argument conversion is counted by `invoke`).
    pub(crate) fn count_refused(&self, h: &Handler) {
        h.count_refused();
    }
}

impl fmt::Debug for Registry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, h)| (n, h.name)))
            .finish()
    }
}
