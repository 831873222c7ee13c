use std::process::ExitCode;

fn main() -> ExitCode {
    filtertool::main(fileids::PROGRAM, fileids::run)
}
