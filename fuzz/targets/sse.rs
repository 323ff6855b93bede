//! AFL++ target `sse`: see `gatehouse_fuzz::sse`.

fn main() {
    afl::fuzz(true, gatehouse_fuzz::sse);
}
