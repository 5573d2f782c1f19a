#[gopark::test(threads = 4)]
async fn unknown() {}

#[gopark::test(flavor = "current_thread")]
async fn flavor() {}

#[gopark::test(worker_threads = 2, worker_threads = 3)]
async fn twice() {}

fn main() {}
