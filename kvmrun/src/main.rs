use std::process::ExitCode;

fn main() -> ExitCode {
    filtertool::main(kvmrun::PROGRAM, kvmrun::run)
}
