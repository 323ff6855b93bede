//! The `gatehouse` binary.

/// mimalloc instead of glibc malloc: a proxied request makes hundreds of small, short-lived
/// allocations across Tokio's worker threads, where glibc's arenas cost ~15 % of the CPU
/// (docs/reliability.md, "Gateway overhead").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
