use vmmcall::vmmcall;

#[vmmcall("twice", user, user)]
fn twice() {}

fn main() {}
