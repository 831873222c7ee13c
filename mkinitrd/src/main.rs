use std::process::ExitCode;

fn main() -> ExitCode {
    filtertool::main(mkinitrd::PROGRAM, mkinitrd::run)
}
