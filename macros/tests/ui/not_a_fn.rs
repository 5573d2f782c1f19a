#[gopark::main]
struct Server;

fn main() {}
