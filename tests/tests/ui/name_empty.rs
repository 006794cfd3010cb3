use vmmcall::vmmcall;

#[vmmcall("")]
fn empty() {}

fn main() {}
