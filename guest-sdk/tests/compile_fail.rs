//! Mistakes the SDK turns into compile errors, with the messages users see.

#[test]
fn mistakes_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
