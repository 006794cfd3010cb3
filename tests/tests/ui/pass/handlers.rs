//! Every accepted form of `#[vmmcall]`, warning-free, registered, callable
//! directly and through the dispatcher.
#![deny(warnings, missing_docs, unused, unsafe_op_in_unsafe_fn)]

use vmmcall::mock::MockVcpu;
use vmmcall::{dispatch, vmmcall, Caller, Error, GuestAddr, Registry};

#[vmmcall("hello", user)]
fn hello(arg1: u64) -> u64 {
    arg1 * 2
}

#[vmmcall("unit")]
fn unit() {}

#[vmmcall("explicit_unit",)]
fn explicit_unit(_flag: bool) -> () {}

#[vmmcall("all_types", user,)]
fn all_types(cx: &mut Caller<'_>, a: u8, b: i16, c: usize, d: isize, e: GuestAddr) -> u32 {
    let _ = (cx.cpl(), b, c, d, e);
    u32::from(a)
}

#[vmmcall("more_types")]
fn more_types(a: u16, b: u32, c: i8, d: i32, e: i64) -> Result<u8, Error> {
    if a == 0 && b == 0 && c == 0 && d == 0 && e == 0 {
        Ok(1)
    } else {
        Err(Error::Range)
    }
}

#[vmmcall("shared_context")]
fn shared_context(cx: &Caller) -> usize {
    usize::from(cx.cpl())
}

#[vmmcall("identity")]
fn identity(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

#[vmmcall("returns_bool")]
fn returns_bool(x: u64) -> bool {
    x > 5
}

#[vmmcall("impl_ret")]
fn impl_ret() -> impl vmmcall::IntoRet {
    3_u16
}

/// Public, documented, deprecated: still registered, no warnings.
#[deprecated = "use hello"]
#[vmmcall("old")]
pub fn old() -> Result<u64, Error> {
    Ok(1)
}

#[vmmcall("gone")]
#[cfg(any())]
fn gone() {}

// Names that an escaping scheme could confuse: each gets its own symbol.
#[vmmcall("a_b")]
fn a_b() -> u8 {
    1
}
#[vmmcall("a__b")]
fn a_double_b() -> u8 {
    2
}
#[vmmcall("a.b")]
fn a_dot_b() -> u8 {
    3
}
#[vmmcall("a_2Eb")]
fn a_2eb() -> u8 {
    4
}
#[vmmcall("x")]
fn x() -> u8 {
    5
}
#[vmmcall("x_")]
fn x_() -> u8 {
    6
}

// Exactly 255 bytes.
#[vmmcall("nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn")]
fn longest() {}

mod inner {
    use vmmcall::vmmcall;

    #[vmmcall("inner::private")]
    fn private(v: u8) -> u8 {
        v
    }

    pub(crate) fn call_private() -> u8 {
        private(9)
    }
}

/// A handler declared inside a function body is registered too.
fn with_local_handler() -> u8 {
    #[vmmcall("local")]
    fn local(v: u8) -> u8 {
        v
    }
    local(8)
}

fn call(v: &mut MockVcpu, name: &str, args: [u64; 5]) -> u64 {
    let r = Registry::global().expect("registry");
    v.regs.rax = r.lookup(name.as_bytes()).expect(name).get();
    [v.regs.rbx, v.regs.rcx, v.regs.rdx, v.regs.rsi, v.regs.rdi] = args;
    dispatch(r, v);
    v.regs.rax
}

#[allow(deprecated)]
fn main() {
    // Still plain Rust functions.
    assert_eq!(hello(21), 42);
    unit();
    explicit_unit(true);
    assert_eq!(more_types(0, 0, 0, 0, 0), Ok(1));
    assert_eq!(old(), Ok(1));
    assert_eq!(inner::call_private(), 9);
    assert_eq!(with_local_handler(), 8);
    assert_eq!((a_b(), a_double_b(), a_dot_b(), a_2eb(), x(), x_()), (1, 2, 3, 4, 5, 6));
    assert!(returns_bool(6));
    let _ = impl_ret();
    longest();

    let r = Registry::global().expect("registry");
    let names: Vec<&str> = r.iter().map(|(_, h)| h.name()).collect();
    assert_eq!(names.len(), 19, "{names:?}");
    assert!(!names.contains(&"gone"));
    assert!(names.iter().any(|n| n.len() == 255));
    assert!(r.get(r.lookup(b"hello").expect("hello").get()).expect("h").user());
    assert!(!r.get(r.lookup(b"unit").expect("unit").get()).expect("u").user());

    let mut v = MockVcpu::new();
    assert_eq!(call(&mut v, "hello", [5, 0, 0, 0, 0]), 10);
    assert_eq!(call(&mut v, "all_types", [7, 0, 0, 0, 0]), 7);
    assert_eq!(call(&mut v, "all_types", [256, 0, 0, 0, 0]), Error::Invalid.to_rax());
    assert_eq!(call(&mut v, "more_types", [0; 5]), 1);
    assert_eq!(call(&mut v, "more_types", [1, 0, 0, 0, 0]), Error::Range.to_rax());
    assert_eq!(call(&mut v, "returns_bool", [9, 0, 0, 0, 0]), 1);
    assert_eq!(call(&mut v, "impl_ret", [0; 5]), 3);
    assert_eq!(call(&mut v, "a.b", [0; 5]), 3);
    assert_eq!(call(&mut v, "a_2Eb", [0; 5]), 4);
    assert_eq!(call(&mut v, "inner::private", [4, 0, 0, 0, 0]), 4);
    assert_eq!(call(&mut v, "local", [6, 0, 0, 0, 0]), 6);
    // A u64/usize result in the -errno range is -EOVERFLOW, never an errno.
    assert_eq!(identity(u64::MAX), usize::MAX);
    let just_below = (-4096_i64) as u64;
    assert_eq!(call(&mut v, "identity", [just_below, 0, 0, 0, 0]), just_below);
    assert_eq!(call(&mut v, "identity", [u64::MAX, 0, 0, 0, 0]), Error::Overflow.to_rax());
    assert_eq!(call(&mut v, "identity", [(-4095_i64) as u64, 0, 0, 0, 0]), Error::Overflow.to_rax());
    assert_eq!(call(&mut v, "shared_context", [0; 5]), 0);
    assert_eq!(call(&mut v, "explicit_unit", [2, 0, 0, 0, 0]), Error::Invalid.to_rax());
}
