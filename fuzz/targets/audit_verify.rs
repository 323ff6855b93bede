//! AFL++ target `audit_verify`: see `gatehouse_fuzz::audit_verify`.

fn main() {
    afl::fuzz(true, gatehouse_fuzz::audit_verify);
}
