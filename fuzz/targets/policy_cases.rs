//! AFL++ target `policy_cases`: see `gatehouse_fuzz::policy_cases`.

fn main() {
    // Loads the default policy once, before AFL++ forks: its coverage would otherwise show in
    // the first run of each child only, and AFL++ would see the target as unstable.
    gatehouse_fuzz::policy_cases(b"");
    afl::fuzz(true, gatehouse_fuzz::policy_cases);
}
