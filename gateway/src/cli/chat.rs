//! `gatehouse chat`: one prompt, the answer streamed to stdout.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::{load, ConfigArg};
use crate::domain::{ChatEvent, ChatMessage, ChatRequest, Role, Sampling};

/// Arguments of `gatehouse chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Model id (default: the first configured model).
    #[arg(long, short = 'm')]
    model: Option<String>,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, short = 't')]
    temperature: Option<f64>,
    /// Most tokens to generate.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Nucleus sampling mass.
    #[arg(long)]
    top_p: Option<f64>,
    /// Seed for reproducible sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// A system message sent before the prompt.
    #[arg(long)]
    system: Option<String>,
    /// The prompt.
    prompt: String,
}

/// Runs the command.
pub async fn run(args: ChatArgs) -> ExitCode {
    let cfg = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let model = match &args.model {
        Some(id) => match cfg.model(id) {
            Some(m) => m.clone(),
            None => {
                let known: Vec<&str> = cfg.models.iter().map(|m| m.id.as_str()).collect();
                eprintln!(
                    "gatehouse: unknown model `{id}`; configured: {}",
                    known.join(", ")
                );
                return ExitCode::from(2);
            }
        },
        None => cfg.models[0].clone(),
    };

    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let progress = tty.then(|| tokio::spawn(show_progress(model.id.clone())));
    if !tty {
        eprintln!("loading {} ...", model.id);
    }
    let backend = crate::models::load_backend(&model).await;
    if let Some(p) = progress {
        p.abort();
        let _ = p.await;
        eprint!("\r\x1b[2K");
    }
    eprintln!(
        "loaded {} in {:.1}s",
        model.id,
        started.elapsed().as_secs_f64()
    );
    let backend = match backend {
        Ok(b) => b,
        Err(e) => {
            eprintln!("gatehouse: model `{}` failed to load: {e}", model.id);
            return ExitCode::FAILURE;
        }
    };

    let mut messages = Vec::new();
    if let Some(s) = args.system {
        messages.push(ChatMessage {
            role: Role::System,
            content: s,
        });
    }
    messages.push(ChatMessage {
        role: Role::User,
        content: args.prompt,
    });
    let req = ChatRequest {
        request_id: format!("cli-{}", uuid::Uuid::new_v4().simple()),
        model: model.id.clone(),
        messages,
        sampling: Sampling {
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: None,
            max_tokens: args.max_tokens,
            stop: vec![],
            seed: args.seed,
            ignore_eos: false,
        },
        stream: true,
        include_usage: true,
        ..Default::default()
    };
    let mut stream = match backend.chat(&req).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ChatEvent::Delta(t)) => {
                let _ = out.write_all(t.as_bytes());
                let _ = out.flush();
            }
            // No tools are offered here.
            Ok(ChatEvent::ToolCall(_)) => {}
            Ok(ChatEvent::Done {
                finish_reason,
                usage,
            }) => {
                let _ = writeln!(out);
                eprintln!(
                    "[{} prompt tokens, {} completion tokens, finish: {}]",
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    finish_reason.as_str()
                );
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                let _ = writeln!(out);
                eprintln!("gatehouse: generation failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("gatehouse: the answer ended without a finish event");
    ExitCode::FAILURE
}

/// Shows a spinner with the elapsed loading time on a terminal's stderr until aborted.
async fn show_progress(id: String) {
    let start = Instant::now();
    let frames = ['|', '/', '-', '\\'];
    for i in 0usize.. {
        eprint!(
            "\r{} loading {id} ... {:.0}s",
            frames[i % frames.len()],
            start.elapsed().as_secs_f64()
        );
        let _ = std::io::stderr().flush();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
