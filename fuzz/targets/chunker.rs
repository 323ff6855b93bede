//! AFL++ target `chunker`: see `gatehouse_fuzz::chunker`.

fn main() {
    afl::fuzz(true, gatehouse_fuzz::chunker);
}
