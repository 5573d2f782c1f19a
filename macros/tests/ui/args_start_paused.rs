#[gopark::test(start_paused = 1)]
async fn number() {}

#[gopark::test(start_paused = "yes")]
async fn string() {}

#[gopark::test(start_paused)]
async fn no_value() {}

fn main() {}
