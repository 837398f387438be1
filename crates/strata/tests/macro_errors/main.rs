//! `#[strata::cached]` rejects what it cannot memoize with a clear compile error.

#[test]
fn misuse_is_a_clear_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/macro_errors/ui/*.rs");
}
