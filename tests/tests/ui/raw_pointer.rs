use vmmcall::vmmcall;

#[vmmcall("ptr")]
fn ptr(_p: *const u8) {}

fn main() {}
