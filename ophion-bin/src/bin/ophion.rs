//! `ophion`: the command-line client of an Ophion server's API. Exit codes:
//! 0 success, 1 refused by the server, 2 bad usage, 3 server unreachable.

use std::{io::Write as _, process::ExitCode};

use clap::Parser;
use ophion_bin::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ophion: {e}");
            return ExitCode::from(3);
        }
    };
    let mut out = String::new();
    let result = runtime.block_on(run(cli, &mut out));
    let _ = std::io::stdout().write_all(out.as_bytes());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ophion: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
