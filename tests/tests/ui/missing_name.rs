//! A missing name is refused.
use vmmcall::vmmcall;

#[vmmcall]
fn a() {}

#[vmmcall()]
fn b() {}

#[vmmcall(user)]
fn c() {}

#[vmmcall(, user)]
fn d() {}

fn main() {}
