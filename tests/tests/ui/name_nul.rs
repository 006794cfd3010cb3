use vmmcall::vmmcall;

#[vmmcall("hel\0lo")]
fn nul() {}

fn main() {}
