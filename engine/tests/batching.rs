//! Continuous batching on the real SmolLM2 model: sequences decoded together (equal and
//! different prompt lengths, greedy and seeded) get exactly the text each gets alone, and a
//! cancelled sequence leaves the batch without disturbing the others.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use engine::{ChatMessage, DType, GenerationEvent, LocalModel, ModelSpec, Role, Sampling};
use futures::StreamExt;

fn smollm2() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("../models/smollm2-135m-instruct-q4_1.gguf")
}

async fn load(max_concurrent: usize) -> LocalModel {
    LocalModel::load(ModelSpec {
        id: format!("smollm2-batch-{max_concurrent}"),
        path: smollm2(),
        dtype: DType::F32,
        max_concurrent,
        draft: None,
        // No prefix cache: the concurrent runs must compute every prompt again.
        prefix_cache: 0,
    })
    .await
    .expect("load SmolLM2")
}

fn user(prompt: &str) -> Vec<ChatMessage> {
    vec![ChatMessage {
        role: Role::User,
        content: prompt.into(),
    }]
}

async fn answer(model: &LocalModel, prompt: &str, sampling: Sampling) -> String {
    model
        .generate(user(prompt), sampling)
        .expect("generate")
        .run_to_end()
        .await
        .expect("generation")
        .0
}

/// "Name three colours." and "Name three fruits." have the same token count: mistral.rs
/// 0.8.1 as published answered both with one of the two answers when they were batched.
const PROMPTS: &[&str] = &[
    "Name three colours.",
    "Name three fruits.",
    "Write a haiku about the sea.",
    "Explain in two sentences why the sky is blue, for a child.",
    "List the planets of the solar system in order from the sun.",
    "What is a hash map? Answer briefly.",
];

async fn alone_then_together(sampling: impl Fn(usize) -> Sampling) {
    let model = load(4).await;
    let mut alone = Vec::new();
    for (i, p) in PROMPTS.iter().enumerate() {
        alone.push(answer(&model, p, sampling(i)).await);
    }
    // Six at once through four batch slots: sequences join and leave the batch mid-way.
    let together = futures::future::join_all(
        PROMPTS
            .iter()
            .enumerate()
            .map(|(i, p)| answer(&model, p, sampling(i))),
    )
    .await;
    for ((p, a), t) in PROMPTS.iter().zip(&alone).zip(&together) {
        assert_eq!(a, t, "prompt {p:?}: alone vs batched");
    }
    // The equal-length pair must not share an answer.
    assert_ne!(together[0], together[1]);
}

#[tokio::test]
async fn batched_greedy_sequences_get_their_own_answers() {
    alone_then_together(|_| Sampling {
        temperature: Some(0.0),
        max_tokens: Some(40),
        ..Sampling::default()
    })
    .await;
}

#[tokio::test]
async fn batched_seeded_sequences_get_their_own_answers() {
    alone_then_together(|i| Sampling {
        temperature: Some(0.9),
        top_p: Some(0.95),
        seed: Some(1000 + i as u64),
        max_tokens: Some(32),
        ..Sampling::default()
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_sequence_frees_its_slot() {
    let model = load(2).await;
    let long = Sampling {
        temperature: Some(0.0),
        max_tokens: Some(2000),
        ..Sampling::default()
    };
    let short = Sampling {
        temperature: Some(0.0),
        max_tokens: Some(24),
        ..Sampling::default()
    };
    let expected = answer(&model, "Write a haiku about the sea.", short.clone()).await;
    // Two long generations fill both slots.
    let mut a = model
        .generate(
            user("Count from 1 to 1000, one number per line."),
            long.clone(),
        )
        .expect("generate");
    let mut b = model
        .generate(user("Count from 1000 down to 1, one per line."), long)
        .expect("generate");
    for g in [&mut a, &mut b] {
        for _ in 0..3 {
            assert!(matches!(
                g.next().await,
                Some(Ok(GenerationEvent::Delta(_)))
            ));
        }
    }
    assert_eq!(model.active_sequences(), 2);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(30);
    while model.active_sequences() > 1 {
        assert!(
            Instant::now() < deadline,
            "the cancelled sequence never left"
        );
        // `b` keeps decoding meanwhile.
        assert!(matches!(
            b.next().await,
            Some(Ok(GenerationEvent::Delta(_)))
        ));
    }
    // The freed slot serves a new request next to `b`, with the answer it gets alone.
    let next = tokio::spawn({
        let g = model
            .generate(user("Write a haiku about the sea."), short)
            .expect("generate");
        async move { g.run_to_end().await.expect("generation").0 }
    });
    let mut b_tokens = 0;
    while !next.is_finished() {
        match tokio::time::timeout(Duration::from_secs(60), b.next()).await {
            Ok(Some(Ok(GenerationEvent::Delta(_)))) => b_tokens += 1,
            other => panic!("the long generation stopped: {other:?}"),
        }
    }
    assert!(b_tokens > 0, "the new request did not run alongside");
    assert_eq!(next.await.unwrap(), expected);
}
