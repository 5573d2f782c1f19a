#[gopark::test]
fn not_async() {}

#[gopark::test]
async fn with_params(n: u32) {
    let _ = n;
}

#[gopark::test]
#[test]
async fn test_twice() {}

fn main() {}
