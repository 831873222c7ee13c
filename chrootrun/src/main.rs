use std::process::ExitCode;

fn main() -> ExitCode {
    filtertool::main(chrootrun::PROGRAM, chrootrun::run)
}
