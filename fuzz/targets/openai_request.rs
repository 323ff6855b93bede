//! AFL++ target `openai_request`: see `gatehouse_fuzz::openai_request`.

fn main() {
    afl::fuzz(true, gatehouse_fuzz::openai_request);
}
