//! Typed batches: several interface hypercalls in one exit
//! (`vmmcall_batch`, docs/ABI.md), as safe Rust: [`Batch`], [`Entry`],
//! [`Ticket`].

use core::marker::PhantomData;

use crate::{abi, Arg, BatchEntry, Error};

/// One typed entry of a [`Batch`]: an interface hypercall with its
/// arguments, whose result decodes to `T`. Made by an interface's
/// `entries` module; `'a` is the borrow of its buffers.
#[derive(Debug)]
#[must_use = "an entry does nothing until a Batch runs it"]
pub struct Entry<'a, T> {
    raw: BatchEntry,
    lent: PhantomData<&'a mut ()>,
    ret: PhantomData<fn() -> T>,
}

impl<'a, T> Entry<'a, T> {
    /// An entry calling `number` with `args`. For the code that
    /// `vmmcall::interface!` generates.
    ///
    /// # Safety
    /// `number` must be a typed lookup's answer for a declaration whose
    /// result is `T`, and `args` what its stub passes (the ABI's contract
    /// for declared buffers then makes running it safe).
    #[doc(hidden)]
    #[inline]
    pub unsafe fn __new(number: u64, args: [Arg<'a>; 5]) -> Self {
        Entry {
            raw: BatchEntry::new(number, args.map(|a| a.raw())),
            lent: PhantomData,
            ret: PhantomData,
        }
    }

    /// The descriptor the VMM will read.
    pub fn raw(&self) -> &BatchEntry {
        &self.raw
    }
}

/// Where the result of one entry of a [`Batch`] is, and its type.
#[derive(Debug)]
pub struct Ticket<T> {
    index: usize,
    ret: PhantomData<fn() -> T>,
}

impl<T> Clone for Ticket<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Ticket<T> {}

impl<T> Ticket<T> {
    /// The entry's index in its batch.
    pub fn index(self) -> usize {
        self.index
    }
}

/// Up to `N` typed entries (`N` at most 4096), run in one exit by
/// [`run`](Batch::run) (`vmmcall_batch`, docs/ABI.md).
///
/// A `vmmcall::interface!` declaration gives, next to each stub
/// (`demo::hello(5)`), an entry maker in its `entries` module
/// (`demo::entries::hello(5)`) that looks the hypercall up by name and
/// signature as the stub does and returns a typed [`Entry`]. A batch runs
/// its entries in one exit; each [`Ticket`] then gives its entry's result,
/// decoded as declared:
///
/// ```no_run
/// # mod demo { pub mod entries {
/// #   pub fn hello<'a>(x: u64) -> Result<guest_sdk::Entry<'a, u64>, guest_sdk::Error> { unimplemented!() }
/// #   pub fn fill<'a>(out: &'a mut [u8], b: u8) -> Result<guest_sdk::Entry<'a, u64>, guest_sdk::Error> { unimplemented!() }
/// # } }
/// use guest_sdk::Batch;
///
/// let mut buf = [0u8; 64];
/// let mut batch = Batch::<4>::new();
/// let hello = batch.push(demo::entries::hello(5)?)?;
/// let fill = batch.push(demo::entries::fill(&mut buf, 0x5a)?)?;
/// batch.run(false)?;
/// assert_eq!(batch.result(hello)?, 10);
/// assert_eq!(batch.result(fill)?, 64);
/// drop(batch); // the buffer is lent until the batch is gone
/// assert_eq!(buf, [0x5a; 64]);
/// # Ok::<(), guest_sdk::Error>(())
/// ```
///
/// Why it is safe: an entry holds what the stub would pass (integers, and
/// buffers as `(address, length)` of references of the declared
/// direction), and the batch keeps those references borrowed until it is
/// dropped, so nothing else touches a buffer the VMM may write. Each entry
/// is answered as the stub's call would be (docs/ABI.md: "each entry is
/// answered exactly as alone"). Pages of lent buffers are made present
/// when the entry is made; a page the guest OS takes away before the batch
/// runs makes that entry answer [`Error::Fault`].
pub struct Batch<'a, const N: usize> {
    entries: [BatchEntry; N],
    results: [u64; N],
    len: usize,
    /// Entries answered by the last run.
    answered: usize,
    lent: PhantomData<&'a mut ()>,
}

impl<const N: usize> Default for Batch<'_, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, const N: usize> Batch<'a, N> {
    const FITS: () = assert!(
        N as u64 <= abi::BATCH_MAX_ENTRIES,
        "a batch holds at most 4096 entries"
    );

    /// An empty batch.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        Batch {
            entries: [BatchEntry::new(0, [0; 5]); N],
            results: [0; N],
            len: 0,
            answered: 0,
            lent: PhantomData,
        }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add `entry`; its result will be at the returned ticket.
    /// [`Error::Invalid`] when the batch already holds `N` entries.
    pub fn push<T>(&mut self, entry: Entry<'a, T>) -> Result<Ticket<T>, Error> {
        let slot = self.entries.get_mut(self.len).ok_or(Error::Invalid)?;
        *slot = entry.raw;
        let index = self.len;
        self.len += 1;
        Ok(Ticket {
            index,
            ret: PhantomData,
        })
    }

    /// Run every entry in one exit (a long batch may take several; nothing
    /// to do for that). With `stop_on_error`, the batch stops after the
    /// first entry that fails. Returns how many entries were answered;
    /// errors of the batch itself as [`batch`](crate::batch) (`NoSys`
    /// from a VMM without batches).
    pub fn run(&mut self, stop_on_error: bool) -> Result<usize, Error> {
        let entries = self.entries.get(..self.len).ok_or(Error::Invalid)?;
        // SAFETY: every entry came from `Entry::__new` (`push` takes
        // nothing else): a typed hypercall with the arguments its stub
        // would pass, whose buffers stay borrowed for 'a, as long as this
        // batch lives.
        let answered = unsafe { crate::batch(entries, &mut self.results, stop_on_error) };
        self.answered = answered.as_ref().map_or(0, |n| *n);
        answered
    }

    /// The result of the entry at `ticket`, decoded as declared:
    /// [`Error::NotRun`] if the last [`run`](Batch::run) did not answer
    /// it (not run yet, or the batch stopped before it). A ticket of
    /// another batch gives this batch's entry at the same index.
    pub fn result<T: crate::interface::FromRet>(&self, ticket: Ticket<T>) -> Result<T, Error> {
        if ticket.index >= self.answered {
            return Err(Error::NotRun);
        }
        let raw = *self.results.get(ticket.index).ok_or(Error::NotRun)?;
        T::from_ret(Error::check(raw)?)
    }

    /// Forget every entry (and the results), keeping the borrows: a
    /// batch is built anew for another run.
    pub fn clear(&mut self) {
        self.len = 0;
        self.answered = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry of function `n` (never run here).
    fn entry(n: u64) -> Entry<'static, u64> {
        // SAFETY: these tests never run a batch.
        unsafe {
            Entry::__new(
                n,
                [Arg::value(n), Arg::NONE, Arg::NONE, Arg::NONE, Arg::NONE],
            )
        }
    }

    #[test]
    fn entries_fill_the_batch_in_order_and_no_further() {
        let mut b = Batch::<2>::new();
        assert!(b.is_empty());
        let t0 = b.push(entry(7)).unwrap();
        let t1 = b.push(entry(9)).unwrap();
        assert_eq!((t0.index(), t1.index(), b.len()), (0, 1, 2));
        assert_eq!(b.push(entry(11)).unwrap_err(), Error::Invalid);
        assert_eq!(b.entries[1], BatchEntry::new(9, [9, 0, 0, 0, 0]));
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn results_exist_only_for_answered_entries() {
        let mut b = Batch::<3>::new();
        let t: [Ticket<u64>; 3] = [
            b.push(entry(1)).unwrap(),
            b.push(entry(2)).unwrap(),
            b.push(entry(3)).unwrap(),
        ];
        assert_eq!(b.result(t[0]), Err(Error::NotRun), "not run yet");
        // As a run that stopped after the second entry, which failed.
        b.results = [
            5,
            Error::Permission
                .errno()
                .map_or(0, |e| u64::from(e).wrapping_neg()),
            0,
        ];
        b.answered = 2;
        assert_eq!(b.result(t[0]), Ok(5));
        assert_eq!(b.result(t[1]), Err(Error::Permission));
        assert_eq!(b.result(t[2]), Err(Error::NotRun));
        // Decoded as declared: a u8 result out of range is Invalid.
        let small = Ticket::<u8> {
            index: 0,
            ret: PhantomData,
        };
        b.results[0] = 300;
        assert_eq!(b.result(small), Err(Error::Invalid));
    }
}
