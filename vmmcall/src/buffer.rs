//! Guest buffers as an interface handler receives them: an address and a
//! length, from two argument registers, with the direction the interface
//! declared.
//!
//! An interface (`vmmcall::interface!`) declares a buffer parameter as
//! `&[u8]` (the VMM reads it) or `&mut [u8]` (the VMM writes it). The guest
//! passes its address and its length in bytes in two consecutive argument
//! registers; the VMM side receives a [`GuestBuf`] or a [`GuestBufMut`].
//! Neither is checked when it is made: any address and length are
//! accepted, and every access goes through [`Caller`] with the caller's
//! privilege, so a bad address is [`Error::Fault`] when it is used, and an
//! access outside `0..len` is [`Error::NoSpace`] without touching guest
//! memory.
//!
//! A [`GuestBuf`] has no way to write: the guest lent that memory for
//! reading only (its safe stubs pass a shared reference). That is a
//! contract, not a wall: its [`addr`](GuestBuf::addr) could still be
//! handed to [`Caller::write`], and a handler that did would break the
//! guest's soundness, as a kernel writing a `write(2)` buffer would break
//! a program's. docs/ABI.md, "Interfaces": an `in` buffer is never written.

use crate::{Caller, Error, GuestAddr};

/// The range `offset .. offset + len` inside a buffer of `size` bytes, as
/// the guest address where it starts; [`Error::NoSpace`] if it does not
/// fit (including overflow).
fn sub_range(addr: u64, size: u64, offset: u64, len: usize) -> Result<GuestAddr, Error> {
    let len = u64::try_from(len).map_err(|_| Error::NoSpace)?;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(GuestAddr(addr.wrapping_add(offset))),
        _ => Err(Error::NoSpace),
    }
}

/// A guest buffer the VMM may read: `len` bytes at a guest-linear address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestBuf {
    addr: GuestAddr,
    len: u64,
}

impl GuestBuf {
    /// The buffer the guest passed as `addr` and `len` (bytes).
    #[inline]
    pub const fn new(addr: u64, len: u64) -> Self {
        GuestBuf {
            addr: GuestAddr(addr),
            len,
        }
    }

    /// Where it starts, in the guest's linear address space.
    pub const fn addr(&self) -> GuestAddr {
        self.addr
    }

    /// Its length in bytes, as the guest gave it.
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read `dst.len()` bytes from `offset` into `dst`.
    /// [`Error::NoSpace`] if that reaches past the end of the buffer
    /// (nothing is read), [`Error::Fault`] if guest memory is not readable.
    pub fn read_at(&self, cx: &mut Caller<'_>, offset: u64, dst: &mut [u8]) -> Result<(), Error> {
        let at = sub_range(self.addr.0, self.len, offset, dst.len())?;
        cx.read(at, dst)
    }

    /// Read the whole buffer into the start of `dst` and return that part
    /// of `dst`: [`Error::NoSpace`] if `dst` is shorter than the buffer.
    pub fn read<'d>(&self, cx: &mut Caller<'_>, dst: &'d mut [u8]) -> Result<&'d [u8], Error> {
        let len = usize::try_from(self.len).map_err(|_| Error::NoSpace)?;
        let part = dst.get_mut(..len).ok_or(Error::NoSpace)?;
        cx.read(self.addr, part)?;
        Ok(part)
    }
}

/// A guest buffer the VMM may write (and read): `len` bytes at a
/// guest-linear address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestBufMut {
    buf: GuestBuf,
}

impl GuestBufMut {
    /// The buffer the guest passed as `addr` and `len` (bytes).
    #[inline]
    pub const fn new(addr: u64, len: u64) -> Self {
        GuestBufMut {
            buf: GuestBuf::new(addr, len),
        }
    }

    /// Where it starts, in the guest's linear address space.
    pub const fn addr(&self) -> GuestAddr {
        self.buf.addr
    }

    /// Its length in bytes, as the guest gave it.
    pub const fn len(&self) -> u64 {
        self.buf.len
    }

    /// Whether it is empty.
    pub const fn is_empty(&self) -> bool {
        self.buf.len == 0
    }

    /// Write `src` at `offset`. [`Error::NoSpace`] if that reaches past
    /// the end of the buffer (nothing is written), [`Error::Fault`] if
    /// guest memory is not writable at the caller's privilege (the
    /// [`crate::Vcpu`] checks every page before it writes a byte).
    pub fn write_at(&self, cx: &mut Caller<'_>, offset: u64, src: &[u8]) -> Result<(), Error> {
        let at = sub_range(self.buf.addr.0, self.buf.len, offset, src.len())?;
        cx.write(at, src)
    }

    /// Read `dst.len()` bytes from `offset`, as [`GuestBuf::read_at`].
    pub fn read_at(&self, cx: &mut Caller<'_>, offset: u64, dst: &mut [u8]) -> Result<(), Error> {
        self.buf.read_at(cx, offset, dst)
    }

    /// This buffer, for reading only.
    pub const fn as_readable(&self) -> GuestBuf {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockVcpu;

    #[test]
    fn accesses_stay_inside_the_buffer() {
        let mut vcpu = MockVcpu::new();
        vcpu.map(0x1000, true, true).poke(0x1000, b"abcdef");
        let mut cx = Caller::new(&mut vcpu, 1);
        let buf = GuestBufMut::new(0x1000, 4);
        let mut two = [0u8; 2];
        buf.read_at(&mut cx, 2, &mut two).unwrap();
        assert_eq!(&two, b"cd");
        // Past the end, by one byte and by overflow: refused, untouched.
        assert_eq!(buf.read_at(&mut cx, 3, &mut two), Err(Error::NoSpace));
        assert_eq!(
            buf.read_at(&mut cx, u64::MAX, &mut two),
            Err(Error::NoSpace)
        );
        assert_eq!(buf.write_at(&mut cx, 3, b"xy"), Err(Error::NoSpace));
        buf.write_at(&mut cx, 2, b"XY").unwrap();
        let mut all = [0u8; 8];
        assert_eq!(buf.as_readable().read(&mut cx, &mut all).unwrap(), b"abXY");
        // `dst` shorter than the buffer.
        assert_eq!(
            buf.as_readable().read(&mut cx, &mut two),
            Err(Error::NoSpace)
        );
        // The byte after the buffer was never written.
        let mut five = [0u8; 5];
        cx.read(GuestAddr(0x1000), &mut five).unwrap();
        assert_eq!(&five, b"abXYe");
        // An unmapped buffer faults when used, not when made.
        let far = GuestBuf::new(0x9000_0000, 16);
        assert_eq!(far.read_at(&mut cx, 0, &mut two), Err(Error::Fault));
        assert!(GuestBuf::new(0, 0).is_empty() && GuestBufMut::new(5, 0).is_empty());
    }
}
