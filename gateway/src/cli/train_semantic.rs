//! `gatehouse policy train-semantic`: fits the semantic injection classifier on labelled
//! cases, split by source, and prints how it does on the sources it never saw.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::policy::detect::semantic::classifier::FORMAT;
use crate::policy::detect::semantic::cues::worth_scoring;
use crate::policy::detect::semantic::train::{fit, threshold_for, Options, Sample};
use crate::policy::detect::semantic::windows::windows;
use crate::policy::detect::semantic::{models, Classifier};
use crate::policy::set::glob;

/// Arguments of `train-semantic`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// JSON Lines files of cases.
    #[arg(required = true)]
    data: Vec<PathBuf>,
    /// Sources to train on (comma-separated globs, `garak/*`); every other source is held
    /// out: scored, never trained on.
    #[arg(long, value_delimiter = ',', required = true)]
    train_sources: Vec<String>,
    /// The embedding model (sentence-transformers directory of all-MiniLM-L6-v2).
    #[arg(long, default_value = "models/all-minilm-l6-v2")]
    model_dir: PathBuf,
    /// Where to write the weights (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Window embeddings kept between runs (JSON Lines keyed by a hash of model, window
    /// settings and text); embedding the sets is most of the time.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// False-positive rate on the training benign texts that sets the threshold.
    #[arg(long, default_value_t = 0.01)]
    max_fpr: f64,
    /// Words per window.
    #[arg(long, default_value_t = 64)]
    window_words: usize,
    /// Words between window starts.
    #[arg(long, default_value_t = 48)]
    stride_words: usize,
    /// L2 penalty.
    #[arg(long, default_value_t = 1e-4)]
    l2: f32,
}

#[derive(Debug, Deserialize)]
struct Case {
    text: String,
    label: String,
    source: String,
}

/// A case with its window embeddings.
struct Embedded {
    case: Case,
    /// `(vector, passes the first pass)` per window.
    windows: Vec<(Vec<f32>, bool)>,
}

/// Runs the command.
pub fn run(args: TrainArgs) -> ExitCode {
    match train(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: train-semantic: {e}");
            ExitCode::FAILURE
        }
    }
}

fn train(args: &TrainArgs) -> Result<(), String> {
    let mut cases = Vec::new();
    for file in &args.data {
        cases.extend(read_cases(file)?);
    }
    let model = models::load(&args.model_dir)?;
    let model_id = args
        .model_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let embedded = embed_all(args, &model, &model_id, cases)?;
    let is_train = |c: &Case| args.train_sources.iter().any(|g| glob(g, &c.source));
    let samples: Vec<Sample> = embedded
        .iter()
        .filter(|e| is_train(&e.case))
        .map(|e| Sample {
            windows: e.windows.iter().map(|w| w.0.clone()).collect(),
            attack: e.case.label == "attack",
        })
        .collect();
    if !samples.iter().any(|s| s.attack) || !samples.iter().any(|s| !s.attack) {
        return Err("the training sources need attack and benign cases".into());
    }
    let opts = Options {
        l2: args.l2,
        ..Options::default()
    };
    let fitted = fit(&samples, model.dim(), opts);
    // As the detector scores: windows failing the first pass are not embedded.
    let score = |e: &Embedded| -> f32 {
        fitted.score(e.windows.iter().filter(|w| w.1).map(|w| w.0.as_slice()))
    };
    let train_benign: Vec<f32> = embedded
        .iter()
        .filter(|e| is_train(&e.case) && e.case.label == "benign")
        .map(score)
        .collect();
    let threshold = threshold_for(&train_benign, args.max_fpr);
    let table = report(&embedded, &is_train, &score, threshold);
    print!("{}", table.text);
    let skipped = first_pass_share(&embedded);
    println!(
        "threshold {threshold:.4} (training benign false positives <= {}); first pass skips \
         {:.1}% of benign windows, {:.1}% of attack windows",
        args.max_fpr,
        100.0 * skipped.0,
        100.0 * skipped.1
    );
    let classifier = Classifier {
        format: FORMAT.into(),
        embedding_model: model_id,
        window_words: args.window_words,
        stride_words: args.stride_words,
        bias: fitted.bias,
        weights: fitted.weights.clone(),
        threshold,
        trained: json!({
            "train_sources": args.train_sources,
            "max_fpr": args.max_fpr,
            "l2": args.l2,
            "cases": table.counts,
        }),
    };
    let text = serde_json::to_string_pretty(&classifier).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn read_cases(file: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let c: Case = serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: {e}", file.display(), i + 1))?;
            match c.label.as_str() {
                "attack" | "benign" => Ok(c),
                other => Err(format!(
                    "{}:{}: label `{other}`, expected attack or benign",
                    file.display(),
                    i + 1
                )),
            }
        })
        .collect()
}

/// Embeds every case's windows, from the cache where it has them.
fn embed_all(
    args: &TrainArgs,
    model: &engine::Embedder,
    model_id: &str,
    cases: Vec<Case>,
) -> Result<Vec<Embedded>, String> {
    let key = |text: &str| {
        let mut h = Sha256::new();
        h.update(format!(
            "{model_id}\0{}\0{}\0",
            args.window_words, args.stride_words
        ));
        h.update(text);
        format!("{:x}", h.finalize())
    };
    let mut cache: HashMap<String, Vec<Vec<f32>>> = HashMap::new();
    if let Some(path) = args.cache.as_ref().filter(|p| p.is_file()) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in text.lines() {
            // A line cut short by an interrupted run is dropped and embedded again.
            if let Ok((k, v)) = serde_json::from_str::<(String, Vec<Vec<f32>>)>(line) {
                cache.insert(k, v);
            }
        }
    }
    let mut appender = match &args.cache {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let total = cases.len();
    let mut out = Vec::with_capacity(total);
    for (i, case) in cases.into_iter().enumerate() {
        let ranges = windows(&case.text, args.window_words, args.stride_words);
        let k = key(&case.text);
        let vectors = match cache.get(&k) {
            Some(v) if v.len() == ranges.len() => v.clone(),
            _ => {
                let texts: Vec<&str> = ranges.iter().map(|&(a, b)| &case.text[a..b]).collect();
                let v = if texts.is_empty() {
                    Vec::new()
                } else {
                    model.embed(&texts).map_err(|e| e.to_string())?.vectors
                };
                if let Some(f) = appender.as_mut() {
                    let line = serde_json::to_string(&(&k, &v)).map_err(|e| e.to_string())?;
                    writeln!(f, "{line}").map_err(|e| format!("cannot write the cache: {e}"))?;
                }
                v
            }
        };
        let windows = ranges
            .iter()
            .zip(vectors)
            .map(|(&(a, b), v)| (v, worth_scoring(&case.text[a..b])))
            .collect();
        out.push(Embedded { case, windows });
        if (i + 1) % 500 == 0 {
            eprintln!("embedded {}/{total}", i + 1);
        }
    }
    Ok(out)
}

struct Table {
    text: String,
    counts: serde_json::Value,
}

/// Flagged share per (split, label, source).
fn report(
    embedded: &[Embedded],
    is_train: &dyn Fn(&Case) -> bool,
    score: &dyn Fn(&Embedded) -> f32,
    threshold: f32,
) -> Table {
    let mut rows: BTreeMap<(bool, String, String), (usize, usize)> = BTreeMap::new();
    for e in embedded {
        let key = (
            !is_train(&e.case),
            e.case.label.clone(),
            e.case.source.clone(),
        );
        let r = rows.entry(key).or_default();
        r.0 += 1;
        r.1 += usize::from(score(e) >= threshold);
    }
    let mut text = String::from(
        "| split | label | source | cases | flagged | share |\n|---|---|---|---:|---:|---:|\n",
    );
    let mut counts = serde_json::Map::new();
    for ((held_out, label, source), (n, flagged)) in &rows {
        let split = if *held_out { "held out" } else { "train" };
        text += &format!(
            "| {split} | {label} | {source} | {n} | {flagged} | {:.3} |\n",
            *flagged as f64 / *n as f64
        );
        counts.insert(
            format!("{split}/{label}/{source}"),
            json!({"cases": n, "flagged": flagged}),
        );
    }
    Table {
        text,
        counts: counts.into(),
    }
}

/// Shares of benign and attack windows the first pass skips.
fn first_pass_share(embedded: &[Embedded]) -> (f64, f64) {
    let mut n = [(0usize, 0usize); 2];
    for e in embedded {
        let i = usize::from(e.case.label == "attack");
        for w in &e.windows {
            n[i].0 += 1;
            n[i].1 += usize::from(!w.1);
        }
    }
    let share = |(all, skipped): (usize, usize)| skipped as f64 / all.max(1) as f64;
    (share(n[0]), share(n[1]))
}
