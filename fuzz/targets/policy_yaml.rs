//! AFL++ target `policy_yaml`: see `gatehouse_fuzz::policy_yaml`.

fn main() {
    afl::fuzz(true, gatehouse_fuzz::policy_yaml);
}
