//! What the guest stubs of a `vmmcall::interface!` declaration are made of.
//!
//! An interface declaration gives one safe function per hypercall, e.g.
//! `demo::hello(5) -> Result<u64, Error>`, typed as declared. Each stub
//! keeps a [`CallSite::typed`](crate::CallSite::typed) (looked up once
//! with `vmmcall_lookup_typed` and the declaration's signature digest),
//! places its arguments with the helpers below and decodes RAX with
//! [`FromRet`]. You do not call these yourself; they are public so that
//! the stubs, expanded in your interface crate, can.
//!
//! Why the stubs are safe: they pass nothing but integers, `bool`, and
//! buffers as `(address, length)` pairs taken from a reference of the
//! declared direction: `&[u8]` for a buffer the VMM only reads, `&mut
//! [u8]` for one it writes, borrowed until the VMM returns. They rest on
//! the ABI's contract for declared buffers (docs/ABI.md, "Interfaces"): an
//! `in` buffer is never written, an `out` buffer only within its length,
//! as `call!` rests on "Buffers". The VMM side of the same declaration
//! receives `vmmcall::GuestBuf` (no way to write) and
//! `vmmcall::GuestBufMut` (writes bounded by the length), and the
//! signature digest makes sure both sides were built from the same
//! declaration ("Version skew").

use crate::{prefault, prefault_mut, Arg, Error};

/// A buffer the VMM reads: its address and its length in bytes, with every
/// page made present first ([`prefault`]). The `Arg` keeps `buf` borrowed.
#[inline(always)]
pub fn lend(buf: &[u8]) -> (Arg<'_>, Arg<'static>) {
    // SAFETY: a shared slice is valid for reads of its length.
    unsafe { prefault(buf.as_ptr(), buf.len()) };
    (Arg::borrowed(buf.as_ptr()), Arg::value(buf.len() as u64))
}

/// A buffer the VMM writes: its address and its length in bytes, with
/// every page made present and writable first ([`prefault_mut`]). The
/// `Arg` keeps `buf` mutably borrowed, so nothing else touches it while
/// the VMM may write it.
#[inline(always)]
pub fn lend_mut(buf: &mut [u8]) -> (Arg<'_>, Arg<'static>) {
    let len = buf.len();
    // SAFETY: an exclusive slice is valid for reads and writes of its
    // length, and nothing else accesses it.
    unsafe { prefault_mut(buf.as_mut_ptr(), len) };
    (Arg::borrowed(buf.as_mut_ptr()), Arg::value(len as u64))
}

/// A declared result type, decoded from RAX (after the error range was
/// taken off by [`Error::check`]).
///
/// A value that does not fit the declared type (300 for a `u8`, 2 for a
/// `bool`) is [`Error::Invalid`]: a VMM built from the same declaration
/// never returns one (its `IntoRet` zero-extends), so it means the VMM
/// does not keep the declaration.
pub trait FromRet: Sized {
    /// The value, or [`Error::Invalid`].
    fn from_ret(raw: u64) -> Result<Self, Error>;
}

impl FromRet for () {
    #[inline(always)]
    fn from_ret(raw: u64) -> Result<Self, Error> {
        match raw {
            0 => Ok(()),
            _ => Err(Error::Invalid),
        }
    }
}

impl FromRet for bool {
    #[inline(always)]
    fn from_ret(raw: u64) -> Result<Self, Error> {
        match raw {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::Invalid),
        }
    }
}

macro_rules! from_ret_unsigned {
    ($($t:ty),*) => {$(
        impl FromRet for $t {
            #[inline(always)]
            fn from_ret(raw: u64) -> Result<Self, Error> {
                <$t>::try_from(raw).map_err(|_| Error::Invalid)
            }
        }
    )*};
}
from_ret_unsigned!(u8, u16, u32, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_decode_only_when_they_fit() {
        assert_eq!(<()>::from_ret(0), Ok(()));
        assert_eq!(<()>::from_ret(1), Err(Error::Invalid));
        assert_eq!(bool::from_ret(1), Ok(true));
        assert_eq!(bool::from_ret(2), Err(Error::Invalid));
        assert_eq!(u8::from_ret(255), Ok(255));
        assert_eq!(u8::from_ret(256), Err(Error::Invalid));
        assert_eq!(u16::from_ret(65_536), Err(Error::Invalid));
        assert_eq!(u32::from_ret(u64::from(u32::MAX)), Ok(u32::MAX));
        assert_eq!(u64::from_ret(u64::MAX - 5000), Ok(u64::MAX - 5000));
    }

    #[test]
    fn buffers_go_with_their_length() {
        let data = [1u8, 2, 3];
        let (a, l) = lend(&data);
        assert_eq!((a.raw(), l.raw()), (data.as_ptr() as u64, 3));
        let mut out = [0u8; 4096 + 7];
        let ptr = out.as_ptr() as u64;
        let (a, l) = lend_mut(&mut out);
        assert_eq!((a.raw(), l.raw()), (ptr, 4103));
    }
}
