#[gopark::main]
fn main() {}
