#[gopark::test(crate = gopark)]
async fn not_a_string() {}

#[gopark::test(crate = "not a path")]
async fn not_a_path() {}

fn main() {}
