//! The `sasgate` binary: all logic lives in the library; see `sasgate::cli`.
fn main() -> std::process::ExitCode {
    sasgate::cli::run()
}
