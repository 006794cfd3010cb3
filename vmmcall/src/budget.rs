//! Output budgets: how much a guest can make the VMM print.
//!
//! A guest decides how often a hypercall runs, so anything the VMM prints
//! or logs because of a call is output the guest controls: a hostile one
//! can bury the console and slow the VMM down to the speed of its UART
//! (docs/TESTING.md, "Hostile guests"). A [`Budget`] counts such lines and lets the first
//! [`Budget::limit`] through; past it they are only counted.
//!
//! - This crate logs what guests cause (a bad guest address in
//!   [`Caller::read`](crate::Caller::read), an unknown function number, a
//!   refused call, ...) within [`GUEST_LOG`]: 64 records, then one
//!   `Warn` record saying so, then nothing. A VMM can raise, lower
//!   ([`Budget::set_limit`]`(0)`: silent) or read it
//!   ([`Budget::suppressed`]) at any time.
//! - A VMM uses a [`Budget`] of its own for the lines its handlers print and
//!   for its own logging of guest actions (`vmm-core`'s console has one of
//!   each).
//!
//! ```
//! use vmmcall::budget::{Budget, Spend};
//!
//! static PRINTS: Budget = Budget::new(2);
//! let mut printed = Vec::new();
//! for i in 0..5 {
//!     match PRINTS.spend() {
//!         Spend::Print => printed.push(format!("line {i}")),
//!         Spend::Exhausted => printed.push("further lines are counted".into()),
//!         Spend::Suppressed => {}
//!     }
//! }
//! assert_eq!(printed, ["line 0", "line 1", "further lines are counted"]);
//! assert_eq!(PRINTS.suppressed(), 3);
//! ```

use core::sync::atomic::{AtomicU64, Ordering};

/// What to do with one line against a [`Budget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Within the budget: print it.
    Print,
    /// The first line past the budget: print a notice that further lines
    /// are counted instead (this line itself counts as suppressed).
    Exhausted,
    /// Past the budget: only counted.
    Suppressed,
}

/// A count of lines with a limit; see the [module docs](self). Lock-free,
/// usable from a `static`.
#[derive(Debug)]
pub struct Budget {
    limit: AtomicU64,
    seen: AtomicU64,
}

impl Budget {
    /// A budget of `limit` lines.
    pub const fn new(limit: u64) -> Self {
        Budget {
            limit: AtomicU64::new(limit),
            seen: AtomicU64::new(0),
        }
    }

    /// Count one line and say what to do with it.
    #[inline]
    pub fn spend(&self) -> Spend {
        let seen = self.seen.fetch_add(1, Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        if seen < limit {
            Spend::Print
        } else if seen == limit && limit != 0 {
            Spend::Exhausted
        } else {
            Spend::Suppressed
        }
    }

    /// How many lines may be printed.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Change the limit (`u64::MAX`: no limit; 0: nothing at all, not even
    /// the [`Spend::Exhausted`] notice). Lines already counted stay counted.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Lines counted so far, printed or not.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Lines the budget kept back so far.
    pub fn suppressed(&self) -> u64 {
        self.seen().saturating_sub(self.limit())
    }
}

/// The budget of the log records this crate writes because of something a
/// guest did: 64 records by default. See the [module docs](self).
pub static GUEST_LOG: Budget = Budget::new(64);

/// `log::log!` for a record a guest caused, within [`GUEST_LOG`]. Nothing
/// is counted while the level is disabled.
#[cfg(feature = "registry")]
macro_rules! guest_log {
    ($level:expr, $($arg:tt)+) => {{
        let level: log::Level = $level;
        if level <= log::max_level() {
            match $crate::budget::GUEST_LOG.spend() {
                $crate::budget::Spend::Print => log::log!(level, $($arg)+),
                $crate::budget::Spend::Exhausted => log::warn!(
                    "vmmcall: {} log records caused by guests: further ones are counted, not logged (vmmcall::budget::GUEST_LOG)",
                    $crate::budget::GUEST_LOG.limit()
                ),
                $crate::budget::Spend::Suppressed => {}
            }
        }
    }};
}
#[cfg(feature = "registry")]
pub(crate) use guest_log;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_then_one_notice_then_counting() {
        let b = Budget::new(3);
        let spent: [Spend; 6] = core::array::from_fn(|_| b.spend());
        assert_eq!(
            spent,
            [
                Spend::Print,
                Spend::Print,
                Spend::Print,
                Spend::Exhausted,
                Spend::Suppressed,
                Spend::Suppressed
            ]
        );
        assert_eq!((b.seen(), b.suppressed()), (6, 3));
        b.set_limit(u64::MAX);
        assert_eq!((b.spend(), b.suppressed()), (Spend::Print, 0));
        let silent = Budget::new(0);
        assert_eq!(silent.spend(), Spend::Suppressed, "no notice either");
        assert_eq!(silent.suppressed(), 1);
    }
}
