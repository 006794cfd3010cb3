//! Several misuses at once: each is reported, on its own token.
use vmmcall::vmmcall;

// Every problem is reported, each on its own token.
#[vmmcall("", bogus, user, user)]
pub async unsafe fn everything<T>(_a: u8, _b: &str, _c: u8, _d: u8, _e: u8, _f: u8, _g: u8) -> i32 {
    0
}

fn main() {}
