//! AFL++ target `config`: see `gatehouse_fuzz::config`.

fn main() {
    afl::fuzz(true, gatehouse_fuzz::config);
}
