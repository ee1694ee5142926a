//! Test guest: a valid component that targets another world, to check that
//! the host rejects it with a clear reason.

wit_bindgen::generate!({
    inline: "
        package test:other;
        world other {
            export greet: func() -> string;
        }
    ",
});

struct Other;

impl Guest for Other {
    fn greet() -> String {
        "hello from another world".into()
    }
}

export!(Other);
