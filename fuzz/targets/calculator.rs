//! AFL++ target `calculator`: see `gatehouse_fuzz::calculator`.

fn main() {
    afl::fuzz(true, gatehouse_fuzz::calculator);
}
