//! warren-perf: an AMQP 0-9-1 load generator with its own lean client (see README.md).

mod client;
mod clock;
mod consumer;
mod idle;
mod message;
mod options;
mod producer;
mod run;
mod sink;
mod stats;

use std::process::ExitCode;

use clap::Parser;

use crate::options::{AmqpUri, Options};

fn main() -> ExitCode {
    let opts = Options::parse();
    if let Err(e) = opts.validate() {
        eprintln!("warren-perf: {e}");
        return ExitCode::from(2);
    }
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("warren-perf: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(app(opts)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warren-perf: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn app(opts: Options) -> anyhow::Result<ExitCode> {
    if let Some(addr) = &opts.sink {
        let listener = sink::bind(addr).await?;
        eprintln!("warren-perf sink listening on {}", sink::local_addr(&listener)?);
        let serve = sink::serve(listener, opts.size);
        match opts.duration {
            Some(d) => {
                let _ = tokio::time::timeout(std::time::Duration::from_secs_f64(d), serve).await;
            }
            None => {
                tokio::select! {
                    _ = serve => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }

    let mut uri = AmqpUri::parse(&opts.uri).map_err(anyhow::Error::msg)?;
    if opts.self_test {
        let listener = sink::bind("127.0.0.1:0").await?;
        let addr = sink::local_addr(&listener)?;
        tokio::spawn(sink::serve(listener, opts.size));
        uri = AmqpUri { host: addr.ip().to_string(), port: addr.port(), ..uri };
        eprintln!("warren-perf self-test: in-process sink on {addr}");
    }

    if opts.idle_connections > 0 {
        let report = idle::run(&opts, uri.clone()).await?;
        if opts.json {
            println!("{}", report.to_json(&uri));
        } else {
            report.print_text(&uri);
        }
        return Ok(if report.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS });
    }

    let report = run::run(opts.clone(), uri.clone()).await?;
    if opts.json {
        println!("{}", report.to_json(&opts, &uri));
    } else {
        report.print_text(&opts, &uri);
    }
    Ok(if report.error.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
