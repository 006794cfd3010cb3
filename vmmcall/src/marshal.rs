//! Converting between 64-bit registers and handler parameter/return types.
//!
//! Parameters: a register value that does not fit the declared type is
//! [`Error::Invalid`], never truncated.
//!
//! | type                 | accepted register values                               |
//! |----------------------|--------------------------------------------------------|
//! | `u8`/`u16`/`u32`     | `0 ..= MAX` (upper bits must be zero)                  |
//! | `u64`, `usize`       | any                                                    |
//! | `i8`/`i16`/`i32`     | the sign-extension of a value in `MIN ..= MAX`         |
//! | `i64`, `isize`       | any (two's complement)                                 |
//! | `bool`               | 0 or 1                                                 |
//! | [`GuestAddr`]        | any (checked when used)                                |
//!
//! Results: `()` is 0, `bool` is 0/1, `u8`/`u16`/`u32` are zero-extended and
//! can never read as an error. A `u64`/`usize` result in the error range
//! `[-4095, -1]` would be mistaken for `-errno` by the guest, so it is
//! replaced by [`Error::Overflow`] (and logged). Signed results are not
//! accepted at all: return an unsigned type or `Result<_, Error>`.

use crate::abi;
use crate::budget::guest_log;
use crate::{Error, GuestAddr};

/// A handler parameter type: built from one argument register.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a hypercall parameter",
    label = "unsupported parameter type",
    note = "parameters may be u8..u64, i8..i64, usize, isize, bool or vmmcall::GuestAddr"
)]
pub trait FromReg: Sized {
    /// Convert a register value, or [`Error::Invalid`] if it does not fit.
    fn from_reg(raw: u64) -> Result<Self, Error>;
}

/// A handler return type: becomes the RAX value or an error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a hypercall result",
    label = "unsupported return type",
    note = "return (), bool, u8, u16, u32, u64, usize, or Result<one of those, vmmcall::Error>; signed results would collide with -errno"
)]
pub trait IntoRet {
    /// The value for RAX, or the error to return as `-errno`.
    fn into_ret(self) -> Result<u64, Error>;
}

macro_rules! from_reg_unsigned {
    ($($t:ty),*) => {$(
        impl FromReg for $t {
            #[inline]
            fn from_reg(raw: u64) -> Result<Self, Error> {
                <$t>::try_from(raw).map_err(|_| Error::Invalid)
            }
        }
    )*};
}

macro_rules! from_reg_signed {
    ($($t:ty),*) => {$(
        impl FromReg for $t {
            #[inline]
            fn from_reg(raw: u64) -> Result<Self, Error> {
                <$t>::try_from(raw as i64).map_err(|_| Error::Invalid)
            }
        }
    )*};
}

from_reg_unsigned!(u8, u16, u32, u64, usize);
from_reg_signed!(i8, i16, i32, i64, isize);

impl FromReg for bool {
    #[inline]
    fn from_reg(raw: u64) -> Result<Self, Error> {
        match raw {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::Invalid),
        }
    }
}

impl FromReg for GuestAddr {
    #[inline]
    fn from_reg(raw: u64) -> Result<Self, Error> {
        Ok(GuestAddr(raw))
    }
}

impl IntoRet for () {
    #[inline]
    fn into_ret(self) -> Result<u64, Error> {
        Ok(0)
    }
}

impl IntoRet for bool {
    #[inline]
    fn into_ret(self) -> Result<u64, Error> {
        Ok(u64::from(self))
    }
}

macro_rules! into_ret_narrow {
    ($($t:ty),*) => {$(
        impl IntoRet for $t {
            #[inline]
            fn into_ret(self) -> Result<u64, Error> {
                Ok(u64::from(self))
            }
        }
    )*};
}
into_ret_narrow!(u8, u16, u32);

impl IntoRet for u64 {
    #[inline]
    fn into_ret(self) -> Result<u64, Error> {
        if abi::is_error(self) {
            guest_log!(
                log::Level::Warn,
                "hypercall result {self:#x} falls in the -errno range: returning -EOVERFLOW"
            );
            Err(Error::Overflow)
        } else {
            Ok(self)
        }
    }
}

impl IntoRet for usize {
    #[inline]
    fn into_ret(self) -> Result<u64, Error> {
        (self as u64).into_ret()
    }
}

impl<T: IntoRet> IntoRet for Result<T, Error> {
    #[inline]
    fn into_ret(self) -> Result<u64, Error> {
        self.and_then(IntoRet::into_ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_unsigned_rejects_upper_bits() {
        assert_eq!(u8::from_reg(255), Ok(255));
        assert_eq!(u8::from_reg(256), Err(Error::Invalid));
        assert_eq!(u16::from_reg(0x1_0000), Err(Error::Invalid));
        assert_eq!(u32::from_reg(0xffff_ffff), Ok(u32::MAX));
        assert_eq!(u32::from_reg(0x1_0000_0000), Err(Error::Invalid));
        assert_eq!(u64::from_reg(u64::MAX), Ok(u64::MAX));
        assert_eq!(usize::from_reg(u64::MAX), Ok(usize::MAX));
    }

    #[test]
    fn narrow_signed_wants_sign_extension() {
        assert_eq!(i8::from_reg(-128_i64 as u64), Ok(-128));
        assert_eq!(i8::from_reg(127), Ok(127));
        assert_eq!(i8::from_reg(128), Err(Error::Invalid));
        assert_eq!(i8::from_reg(0xff), Err(Error::Invalid)); // not sign-extended
        assert_eq!(i32::from_reg(-1_i64 as u64), Ok(-1));
        assert_eq!(i32::from_reg(0xffff_ffff), Err(Error::Invalid));
        assert_eq!(i64::from_reg(u64::MAX), Ok(-1));
        assert_eq!(isize::from_reg(1 << 63), Ok(isize::MIN));
    }

    #[test]
    fn bool_is_zero_or_one() {
        assert_eq!(bool::from_reg(0), Ok(false));
        assert_eq!(bool::from_reg(1), Ok(true));
        assert_eq!(bool::from_reg(2), Err(Error::Invalid));
        assert_eq!(bool::from_reg(u64::MAX), Err(Error::Invalid));
    }

    #[test]
    fn results_never_alias_errors() {
        assert_eq!(().into_ret(), Ok(0));
        assert_eq!(true.into_ret(), Ok(1));
        assert_eq!(u32::MAX.into_ret(), Ok(0xffff_ffff));
        assert_eq!(10_u64.into_ret(), Ok(10));
        assert_eq!((-4096_i64 as u64).into_ret(), Ok(-4096_i64 as u64));
        assert_eq!((-4095_i64 as u64).into_ret(), Err(Error::Overflow));
        assert_eq!(u64::MAX.into_ret(), Err(Error::Overflow));
        assert_eq!(usize::MAX.into_ret(), Err(Error::Overflow));
        assert_eq!(Ok::<u8, Error>(7).into_ret(), Ok(7));
        assert_eq!(
            Err::<u64, Error>(Error::Fault).into_ret(),
            Err(Error::Fault)
        );
        assert_eq!(Ok::<u64, Error>(u64::MAX).into_ret(), Err(Error::Overflow));
    }
}
