//! The compile errors of `#[gopark::main]` and `#[gopark::test]`, checked
//! against the `.stderr` files beside each case in `tests/ui`. After an
//! intended change of a message, regenerate them with
//! `TRYBUILD=overwrite cargo test -p gopark-macros --test ui` and review
//! the diff.

#[test]
fn compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
