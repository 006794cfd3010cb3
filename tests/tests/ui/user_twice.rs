//! `user` given twice is refused, at the second one.
use vmmcall::vmmcall;

#[vmmcall("twice", user, user)]
fn twice() {}

fn main() {}
