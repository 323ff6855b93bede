//! AFL++ target `template`: see `gatehouse_fuzz::template`.

fn main() {
    afl::fuzz(true, gatehouse_fuzz::template);
}
