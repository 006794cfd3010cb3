//! The `long` example's shared half: the pattern `long_fill` writes, so
//! that the guest can check every byte of it independently of the VMM,
//! and the checksum the call returns.
//!
//! Word `off / 8` of round `round` depends on the seed, the round and
//! the offset, so a page written twice, skipped, or written in the wrong
//! round shows up in the guest's check; the checksum folds every word of
//! every round in order, so a step repeated or lost after a yield changes
//! the call's result.
#![no_std]

/// Bytes per step of `long_fill`: one 4 KiB page (docs/ABI.md, "Long
/// calls").
pub const PAGE: u64 = 4096;

/// The most bytes one round may cover (the guest's buffer).
pub const MAX_LEN: u64 = 16 << 20;

/// The most rounds one call may make.
pub const MAX_ROUNDS: u64 = 16;

/// The pattern word at byte offset `off` (a multiple of 8) of round
/// `round` (a 64-bit mix of the three: splitmix64's finalizer).
#[inline]
pub const fn word(seed: u64, round: u64, off: u64) -> u64 {
    let mut z = seed ^ (round << 56) ^ off;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The checksum after one more word `w` (FNV-1a over words): order matters.
#[inline]
pub const fn fold(sum: u64, w: u64) -> u64 {
    (sum ^ w).wrapping_mul(0x0000_0100_0000_01B3)
}

/// The checksum's start value.
pub const FOLD_START: u64 = 0xCBF2_9CE4_8422_2325;

/// What `long_fill` returns for a checksum: its low 62 bits, so that a
/// result never reads as an error (docs/ABI.md, "Results never look like
/// errors").
pub const fn result_of(sum: u64) -> u64 {
    sum >> 2
}
