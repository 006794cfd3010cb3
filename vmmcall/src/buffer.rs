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
//! **Read once.** A guest byte a call consumes is fetched from guest
//! memory once (docs/ABI.md, "What read once means for guest memory"):
//! another vCPU of the guest may change the buffer while the handler runs,
//! and a handler that checks a value and then reads it again to use it
//! would use a value it never checked (Xen's XSA-155 and XSA-166 were
//! this). So a [`GuestBuf`] is read by value: [`copy_in`](GuestBuf::copy_in)
//! copies the whole buffer into VMM memory, [`read_obj`](GuestBuf::read_obj)
//! one typed value ([`FromGuestBytes`]), and [`reader`](GuestBuf::reader)
//! a cursor that reads forward only, for a buffer larger than the
//! handler's copy. Each consumes the `GuestBuf` (it is neither `Copy` nor
//! `Clone`), so a handler that keeps to it cannot fetch a byte twice: it
//! works on its copy. Going around it (a second `GuestBuf::new` of the
//! same address, [`Caller::read`] of its address) can; the host tests
//! find that with the mock vCPU's read record
//! (`mock::MockVcpu::byte_read_twice`, feature `mock`).
//!
//! A buffer whose range `[addr, addr + len)` wraps past 2^64 is
//! [`Error::Fault`] on every access, as docs/ABI.md says of `-EFAULT`.
//!
//! A [`GuestBuf`] has no way to write: the guest lent that memory for
//! reading only (its safe stubs pass a shared reference). That is a
//! contract, not a wall: its [`addr`](GuestBuf::addr) could still be
//! handed to [`Caller::write`], and a handler that did would break the
//! guest's soundness, as a kernel writing a `write(2)` buffer would break
//! a program's. docs/ABI.md, "Interfaces": an `in` buffer is never written.

use crate::budget::guest_log;
use crate::{Caller, Error, GuestAddr};

/// The guest address of `offset .. offset + len` inside the buffer of
/// `size` bytes at `addr`: [`Error::NoSpace`] if it does not fit in
/// `0..size` (including overflow), then [`Error::Fault`] (logged) if the
/// buffer's own range wraps past 2^64 (issue 24, finding 8: this wrapped
/// and reached low memory).
fn sub_range(
    cx: &Caller<'_>,
    addr: u64,
    size: u64,
    offset: u64,
    len: usize,
) -> Result<GuestAddr, Error> {
    let len = u64::try_from(len).map_err(|_| Error::NoSpace)?;
    match offset.checked_add(len) {
        Some(end) if end <= size => {}
        _ => return Err(Error::NoSpace),
    }
    // The last byte of the buffer, addr + size - 1, must not wrap (an
    // empty buffer names no byte).
    let wraps = size
        .checked_sub(1)
        .is_some_and(|last| addr.checked_add(last).is_none());
    match addr.checked_add(offset) {
        Some(at) if !wraps => Ok(GuestAddr(at)),
        _ => {
            guest_log!(
                log::Level::Warn,
                "vmmcall {}: guest buffer {addr:#x} + {size:#x} wraps around the address space",
                cx.number()
            );
            Err(Error::Fault)
        }
    }
}

/// A value a handler reads out of a guest buffer with
/// [`GuestBuf::read_obj`]: made from a copy of its bytes in VMM memory, so
/// that whatever it checks stays true while the handler uses it.
///
/// Implemented for the integer types (little-endian, as the guest stores
/// them) and byte arrays. A handler's own descriptor implements it by
/// parsing the bytes (and may refuse them with an error such as
/// [`Error::Invalid`]):
///
/// ```
/// use vmmcall::{Error, FromGuestBytes};
///
/// /// `struct { u32 offset; u16 len; u16 flags; }` in the guest.
/// struct Desc { offset: u32, len: u16 }
///
/// impl FromGuestBytes for Desc {
///     type Bytes = [u8; 8];
///     fn from_guest_bytes(b: [u8; 8]) -> Result<Self, Error> {
///         let [o0, o1, o2, o3, l0, l1, f0, f1] = b;
///         if u16::from_le_bytes([f0, f1]) != 0 {
///             return Err(Error::Invalid);
///         }
///         Ok(Desc {
///             offset: u32::from_le_bytes([o0, o1, o2, o3]),
///             len: u16::from_le_bytes([l0, l1]),
///         })
///     }
/// }
/// # let d = Desc::from_guest_bytes([1, 0, 0, 0, 2, 0, 0, 0]).unwrap();
/// # assert_eq!((d.offset, d.len), (1, 2));
/// ```
pub trait FromGuestBytes: Sized {
    /// The bytes it is made from: `[u8; N]`.
    type Bytes: GuestBytes;
    /// The value from its bytes, or an error the call returns.
    fn from_guest_bytes(bytes: Self::Bytes) -> Result<Self, Error>;
}

/// A fixed number of bytes, `[u8; N]`: what a [`FromGuestBytes`] value is
/// read as.
pub trait GuestBytes: AsMut<[u8]> {
    /// All zero.
    fn zeroed() -> Self;
}

impl<const N: usize> GuestBytes for [u8; N] {
    #[inline]
    fn zeroed() -> Self {
        [0; N]
    }
}

impl<const N: usize> FromGuestBytes for [u8; N] {
    type Bytes = [u8; N];
    #[inline]
    fn from_guest_bytes(bytes: [u8; N]) -> Result<Self, Error> {
        Ok(bytes)
    }
}

macro_rules! from_guest_bytes_int {
    ($($t:ty),*) => {$(
        impl FromGuestBytes for $t {
            type Bytes = [u8; core::mem::size_of::<$t>()];
            #[inline]
            fn from_guest_bytes(bytes: Self::Bytes) -> Result<Self, Error> {
                Ok(<$t>::from_le_bytes(bytes))
            }
        }
    )*};
}
from_guest_bytes_int!(u8, u16, u32, u64, i8, i16, i32, i64);

/// A guest buffer the VMM may read: `len` bytes at a guest-linear address,
/// read once (module docs): every read consumes it.
#[derive(Debug, PartialEq, Eq)]
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

    /// Copy the whole buffer, once, into the start of `dst` and return that
    /// part of `dst`: [`Error::NoSpace`] if `dst` is shorter than the
    /// buffer (nothing is read), [`Error::Fault`] if guest memory is not
    /// readable.
    pub fn copy_in<'d>(self, cx: &mut Caller<'_>, dst: &'d mut [u8]) -> Result<&'d [u8], Error> {
        let len = usize::try_from(self.len).map_err(|_| Error::NoSpace)?;
        let part = dst.get_mut(..len).ok_or(Error::NoSpace)?;
        self.reader().read_exact(cx, part)?;
        Ok(part)
    }

    /// Read one `T` from the start of the buffer, once, and make it from
    /// that copy: [`Error::NoSpace`] if the buffer is shorter than `T`'s
    /// bytes (nothing is read). Bytes after them are not read.
    pub fn read_obj<T: FromGuestBytes>(self, cx: &mut Caller<'_>) -> Result<T, Error> {
        self.reader().read_obj(cx)
    }

    /// A cursor that reads the buffer from its start, forward only, each
    /// byte at most once.
    pub const fn reader(self) -> GuestReader {
        GuestReader { buf: self, done: 0 }
    }
}

/// Reads a [`GuestBuf`] forward: the bytes it has read are behind it, so
/// none is fetched twice. After an error it reads nothing more.
#[derive(Debug)]
pub struct GuestReader {
    buf: GuestBuf,
    done: u64,
}

impl GuestReader {
    /// The bytes not read yet.
    pub const fn remaining(&self) -> u64 {
        self.buf.len.saturating_sub(self.done)
    }

    /// Read the next `dst.len()` bytes into `dst`: [`Error::NoSpace`] if
    /// fewer remain (nothing is read, and the cursor stays).
    pub fn read_exact(&mut self, cx: &mut Caller<'_>, dst: &mut [u8]) -> Result<(), Error> {
        let at = sub_range(cx, self.buf.addr.0, self.buf.len, self.done, dst.len())?;
        let n = dst.len() as u64;
        // Consumed whether or not the read succeeds: a failed read may
        // have fetched part of it.
        self.done = self.done.saturating_add(n);
        let read = cx.read(at, dst);
        if read.is_err() {
            self.done = self.buf.len;
        }
        read
    }

    /// Read the next `min(dst.len(), remaining)` bytes into the start of
    /// `dst` and return them (empty at the end of the buffer).
    pub fn read<'d>(&mut self, cx: &mut Caller<'_>, dst: &'d mut [u8]) -> Result<&'d [u8], Error> {
        let n = usize::try_from(self.remaining()).map_or(dst.len(), |r| r.min(dst.len()));
        let part = dst.get_mut(..n).ok_or(Error::NoSpace)?;
        self.read_exact(cx, part)?;
        Ok(part)
    }

    /// Read the next `T` ([`GuestBuf::read_obj`]).
    pub fn read_obj<T: FromGuestBytes>(&mut self, cx: &mut Caller<'_>) -> Result<T, Error> {
        let mut bytes = T::Bytes::zeroed();
        self.read_exact(cx, bytes.as_mut())?;
        T::from_guest_bytes(bytes)
    }

    /// Pass over the next `n` bytes without reading them:
    /// [`Error::NoSpace`] if fewer remain.
    pub fn skip(&mut self, n: u64) -> Result<(), Error> {
        if n > self.remaining() {
            return Err(Error::NoSpace);
        }
        self.done = self.done.saturating_add(n);
        Ok(())
    }
}

/// A guest buffer the VMM may write: `len` bytes at a guest-linear
/// address.
#[derive(Debug, PartialEq, Eq)]
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
        let at = self.at(cx, offset, src.len())?;
        cx.write(at, src)
    }

    /// The guest address of `len` bytes at `offset`, checked as
    /// [`write_at`](GuestBufMut::write_at) checks them, for a write of
    /// several buffers as one with [`Caller::write_all`]:
    ///
    /// ```
    /// # use vmmcall::{Caller, Error, GuestBufMut};
    /// fn both(cx: &mut Caller<'_>, a: GuestBufMut, b: GuestBufMut) -> Result<(), Error> {
    ///     let at_a = a.at(cx, 0, 4)?;
    ///     let at_b = b.at(cx, 0, 3)?;
    ///     // All or nothing: a fault in `b` leaves `a` unwritten too.
    ///     cx.write_all(&[(at_a, &b"four"[..]), (at_b, &b"two"[..])])
    /// }
    /// ```
    pub fn at(&self, cx: &Caller<'_>, offset: u64, len: usize) -> Result<GuestAddr, Error> {
        sub_range(cx, self.buf.addr.0, self.buf.len, offset, len)
    }

    /// This buffer, to be read once (and no longer written through this
    /// handle): for a buffer the VMM reads before it writes, take its
    /// address and length first.
    pub const fn into_readable(self) -> GuestBuf {
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
        // Past the end, by one byte and by overflow: refused, untouched.
        assert_eq!(buf.write_at(&mut cx, 3, b"xy"), Err(Error::NoSpace));
        assert_eq!(buf.at(&cx, u64::MAX, 2), Err(Error::NoSpace));
        buf.write_at(&mut cx, 2, b"XY").unwrap();
        let mut two = [0u8; 2];
        let mut all = [0u8; 8];
        assert_eq!(
            GuestBuf::new(0x1000, 4).copy_in(&mut cx, &mut two),
            Err(Error::NoSpace),
            "`dst` shorter than the buffer"
        );
        assert_eq!(
            buf.into_readable().copy_in(&mut cx, &mut all).unwrap(),
            b"abXY"
        );
        // The byte after the buffer was never written.
        let mut five = [0u8; 5];
        cx.read(GuestAddr(0x1000), &mut five).unwrap();
        assert_eq!(&five, b"abXYe");
        // An unmapped buffer faults when used, not when made.
        let far = GuestBuf::new(0x9000_0000, 16);
        assert_eq!(far.copy_in(&mut cx, &mut all), Err(Error::NoSpace));
        let far = GuestBuf::new(0x9000_0000, 8);
        assert_eq!(far.copy_in(&mut cx, &mut all), Err(Error::Fault));
        assert!(GuestBuf::new(0, 0).is_empty() && GuestBufMut::new(5, 0).is_empty());
    }

    #[test]
    fn the_reader_reads_forward_each_byte_once() {
        let mut vcpu = MockVcpu::new();
        vcpu.map(0x1000, true, true)
            .poke(0x1ff8, &0x1122_3344_5566_7788u64.to_le_bytes());
        vcpu.map(0x2000, true, true).poke(0x2000, b"tail");
        let mut cx = Caller::new(&mut vcpu, 1);
        let mut r = GuestBuf::new(0x1ff8, 12).reader();
        assert_eq!(r.read_obj::<u32>(&mut cx), Ok(0x5566_7788));
        assert_eq!(r.read_obj::<u16>(&mut cx), Ok(0x3344));
        r.skip(2).unwrap();
        assert_eq!(r.remaining(), 4);
        // More than remains: refused, nothing read, the cursor stays.
        assert_eq!(r.read_obj::<u64>(&mut cx), Err(Error::NoSpace));
        assert_eq!(r.skip(5), Err(Error::NoSpace));
        let mut big = [0u8; 16];
        assert_eq!(r.read(&mut cx, &mut big), Ok(&b"tail"[..]));
        assert_eq!(r.read(&mut cx, &mut big), Ok(&b""[..]));
        assert_eq!(
            GuestBuf::new(0x1ff8, 4).read_obj::<[u8; 2]>(&mut cx),
            Ok([0x88, 0x77])
        );
        assert_eq!(
            GuestBuf::new(0x1ff8, 1).read_obj::<i16>(&mut cx),
            Err(Error::NoSpace)
        );
        // Nothing above fetched a byte twice but the last read_obj, which
        // read the start again through a second GuestBuf.
        assert_eq!(vcpu.byte_read_twice(), Some(0x1ff8));
        // After a fault the reader reads nothing more.
        vcpu.clear_reads();
        let mut cx = Caller::new(&mut vcpu, 1);
        let mut r = GuestBuf::new(0x2ffe, 8).reader();
        assert_eq!(r.read_exact(&mut cx, &mut [0u8; 4]), Err(Error::Fault));
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.read(&mut cx, &mut big), Ok(&b""[..]));
    }

    #[test]
    fn a_buffer_that_wraps_past_2_64_is_a_fault() {
        // Eight bytes from 2^64 - 4: the last four would be at 0..4.
        let mut vcpu = MockVcpu::new();
        vcpu.map(0, true, true).poke(0, b"low!");
        vcpu.map(u64::MAX, true, true);
        let mut cx = Caller::new(&mut vcpu, 1);
        let out = GuestBufMut::new(u64::MAX - 3, 8);
        assert_eq!(out.write_at(&mut cx, 4, b"WRAP"), Err(Error::Fault));
        // Even the first bytes, which do not wrap: the buffer does.
        assert_eq!(out.write_at(&mut cx, 0, b"top"), Err(Error::Fault));
        let mut r = GuestBuf::new(u64::MAX - 3, 8).reader();
        r.skip(4).unwrap();
        assert_eq!(r.read_obj::<u32>(&mut cx), Err(Error::Fault));
        assert_eq!(vcpu.peek(0, 4), b"low!", "nothing written at address 0");
        assert_eq!(vcpu.read_log(), &[], "nothing read");
        // A buffer that ends at 2^64 exactly does not wrap.
        let mut cx = Caller::new(&mut vcpu, 1);
        let last = GuestBufMut::new(u64::MAX - 3, 4);
        assert_eq!(last.write_at(&mut cx, 0, b"end!"), Ok(()));
        assert_eq!(vcpu.peek(u64::MAX - 3, 4), b"end!");
    }
}
