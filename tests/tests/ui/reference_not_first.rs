use vmmcall::vmmcall;

#[vmmcall("greet")]
fn greet(_len: u64, _name: &str) {}

fn main() {}
