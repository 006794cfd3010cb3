//! A name that is not a plain string literal is refused, at that token.
use vmmcall::vmmcall;

#[vmmcall(hello)]
fn a() {}

#[vmmcall(42)]
fn b() {}

#[vmmcall(b"hello")]
fn c() {}

#[vmmcall(concat!("hel", "lo"))]
fn d() {}

#[vmmcall("hello"suffix)]
fn e() {}

fn main() {}
