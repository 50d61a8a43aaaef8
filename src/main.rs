//! The `sasgate` binary: all logic lives in the library; see `sasgate::cli`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() -> std::process::ExitCode {
    sasgate::cli::run()
}
