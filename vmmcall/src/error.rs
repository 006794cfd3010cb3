//! The errors a hypercall can return, and their `-errno` encoding in RAX.
//!
//! Errors travel to the guest as negative Linux errno values in RAX (viewed
//! as `u64`), see [`crate::abi::ERRNO_MIN_RAW`]. The numbers are the x86_64
//! Linux ones (`include/uapi/asm-generic/errno-base.h` and `errno.h`), so a
//! Linux guest can hand them to `strerror` unchanged.

use core::fmt;

/// An error a hypercall returns to the guest.
///
/// Every variant is one Linux errno value; [`Error::errno`] gives it and
/// [`Error::to_rax`] gives the value the guest finds in RAX.
///
/// `#[repr(u64)]`: a handler's `Result<u64, Error>` is then a pair of
/// scalars, which the handler returns in two registers instead of through
/// memory (one hypercall is a few instructions cheaper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u64)]
pub enum Error {
    /// `EPERM` (1): the caller's privilege level may not call this function
    /// (a ring-3 caller of a handler not marked `user`).
    Permission,
    /// `EIO` (5): the handler failed talking to a device.
    Io,
    /// `EFAULT` (14): guest memory named by an argument is unmapped, not
    /// accessible at the caller's privilege, outside guest RAM, or its range
    /// overflows the address space.
    Fault,
    /// `EBUSY` (16): the resource the handler needs is in use.
    Busy,
    /// `EINVAL` (22): an argument does not fit the handler's declared type
    /// (e.g. 300 for a `u8`, 2 for a `bool`) or is otherwise invalid.
    Invalid,
    /// `ENOSPC` (28): the guest's buffer is too small for the result.
    NoSpace,
    /// `ERANGE` (34): a numeric argument is out of the handler's range.
    Range,
    /// `ENOSYS` (38): no function has this number.
    NoSys,
    /// `EPROTO` (71): a typed lookup (`vmmcall_lookup_typed`) found the
    /// name, but the handler was declared with another signature than the
    /// caller was built against (or with none): calling it would pass the
    /// wrong types. See docs/ABI.md, "Version skew".
    Mismatch,
    /// `EOVERFLOW` (75): the handler's successful result would read as an
    /// error (it falls in `[-4095, -1]` as `i64`) and was replaced by this.
    Overflow,
}

impl Error {
    /// Every variant, in errno order.
    pub const ALL: [Error; 10] = [
        Error::Permission,
        Error::Io,
        Error::Fault,
        Error::Busy,
        Error::Invalid,
        Error::NoSpace,
        Error::Range,
        Error::NoSys,
        Error::Mismatch,
        Error::Overflow,
    ];

    /// The positive Linux errno number.
    pub const fn errno(self) -> u16 {
        match self {
            Error::Permission => 1,
            Error::Io => 5,
            Error::Fault => 14,
            Error::Busy => 16,
            Error::Invalid => 22,
            Error::NoSpace => 28,
            Error::Range => 34,
            Error::NoSys => 38,
            Error::Mismatch => 71,
            Error::Overflow => 75,
        }
    }

    /// The error for a positive errno number, if it is one of ours.
    pub const fn from_errno(errno: u16) -> Option<Error> {
        Some(match errno {
            1 => Error::Permission,
            5 => Error::Io,
            14 => Error::Fault,
            16 => Error::Busy,
            22 => Error::Invalid,
            28 => Error::NoSpace,
            34 => Error::Range,
            38 => Error::NoSys,
            71 => Error::Mismatch,
            75 => Error::Overflow,
            _ => return None,
        })
    }

    /// The value the guest finds in RAX: `-errno` as `u64`.
    pub const fn to_rax(self) -> u64 {
        (self.errno() as u64).wrapping_neg()
    }

    /// The Linux name of the errno (`"EFAULT"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Error::Permission => "EPERM",
            Error::Io => "EIO",
            Error::Fault => "EFAULT",
            Error::Busy => "EBUSY",
            Error::Invalid => "EINVAL",
            Error::NoSpace => "ENOSPC",
            Error::Range => "ERANGE",
            Error::NoSys => "ENOSYS",
            Error::Mismatch => "EPROTO",
            Error::Overflow => "EOVERFLOW",
        }
    }

    const fn description(self) -> &'static str {
        match self {
            Error::Permission => "caller's privilege level may not call this function",
            Error::Io => "I/O error",
            Error::Fault => "bad guest address",
            Error::Busy => "resource busy",
            Error::Invalid => "invalid argument",
            Error::NoSpace => "guest buffer too small",
            Error::Range => "argument out of range",
            Error::NoSys => "no such hypercall number",
            Error::Mismatch => "the hypercall's declared signature differs from the caller's",
            Error::Overflow => "result collides with the error range",
        }
    }
}

/// Decode a raw RAX value: `Ok(value)` below the error range, `Err(errno)`
/// (the positive number, 1..=4095) inside it.
#[inline]
pub const fn decode_rax(rax: u64) -> Result<u64, u16> {
    if crate::abi::is_error(rax) {
        // In the error range, -rax is in 1..=4095 and fits u16.
        Err(rax.wrapping_neg() as u16)
    } else {
        Ok(rax)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.name(),
            self.errno(),
            self.description()
        )
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_round_trip_and_linux_numbers() {
        for e in Error::ALL {
            assert_eq!(Error::from_errno(e.errno()), Some(e));
            assert_eq!(decode_rax(e.to_rax()), Err(e.errno()));
        }
        assert_eq!(Error::NoSys.to_rax(), -38_i64 as u64);
        assert_eq!(Error::Permission.to_rax(), -1_i64 as u64);
        assert_eq!(Error::Invalid.to_rax(), -22_i64 as u64);
        assert_eq!(Error::Fault.to_rax(), -14_i64 as u64);
        assert_eq!(Error::Mismatch.to_rax(), -71_i64 as u64);
        assert_eq!(Error::from_errno(2), None);
    }

    #[test]
    fn decode_boundaries() {
        assert_eq!(decode_rax(0), Ok(0));
        assert_eq!(decode_rax(-4096_i64 as u64), Ok(-4096_i64 as u64));
        assert_eq!(decode_rax(-4095_i64 as u64), Err(4095));
        assert_eq!(decode_rax(u64::MAX), Err(1));
    }
}
