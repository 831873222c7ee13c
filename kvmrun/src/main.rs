//! `kvmrun`: boot an initrd in a qemu VM and run a program in it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = filtertool::parse_args::<kvmrun::Cli>(kvmrun::TOOL, filtertool::exit::RUNNER_FAILED);
    filtertool::main(kvmrun::TOOL, filtertool::exit::RUNNER_FAILED, || {
        kvmrun::run(&cli)
    })
}
