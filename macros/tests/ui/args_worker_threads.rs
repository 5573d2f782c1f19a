#[gopark::test(worker_threads = 0)]
async fn zero() {}

#[gopark::test(worker_threads = "4")]
async fn string() {}

#[gopark::test(worker_threads = 2.5)]
async fn float() {}

#[gopark::test(worker_threads = n)]
async fn variable() {}

#[gopark::test(worker_threads)]
async fn no_value() {}

fn main() {}
