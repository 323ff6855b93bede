//! Speculative decoding on the real SmolLM2 model, drafting for itself.
//!
//! Greedy output with a draft must equal plain greedy output token for token; runs repeat the
//! same prompt to show that no cache (prefix cache or the draft's) leaks between requests.

use std::path::PathBuf;

use engine::{
    ChatMessage, DType, DraftSpec, LocalModel, ModelSpec, Role, Sampling, SpeculativeMode, Usage,
};

fn smollm2() -> PathBuf {
    // Read at run time: a test binary reused from another checkout keeps a stale path.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("../models/smollm2-135m-instruct-q4_1.gguf")
}

fn spec(id: &str, draft: Option<usize>) -> ModelSpec {
    ModelSpec {
        id: id.into(),
        path: smollm2(),
        dtype: DType::F32,
        max_concurrent: 1,
        draft: draft.map(|gamma| DraftSpec {
            path: smollm2(),
            gamma,
            mode: SpeculativeMode::On,
        }),
        prefix_cache: engine::DEFAULT_PREFIX_CACHE,
    }
}

async fn run(model: &LocalModel, prompt: &str, sampling: Sampling) -> (String, Usage) {
    let messages = vec![ChatMessage {
        role: Role::User,
        content: prompt.into(),
    }];
    model
        .generate(messages, sampling)
        .expect("generate")
        .run_to_end()
        .await
        .expect("generation")
}

fn greedy(max_tokens: usize) -> Sampling {
    Sampling {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..Sampling::default()
    }
}

const PROMPTS: &[&str] = &[
    "Write a Python function that checks whether a number is prime.",
    "Explain what a hash map is in three sentences.",
    "List five colours of the rainbow, one per line.",
    "Write a haiku about autumn leaves.",
];

#[tokio::test(flavor = "multi_thread")]
async fn self_draft_greedy_output_equals_plain_greedy_output() {
    let plain = LocalModel::load(spec("plain", None))
        .await
        .expect("load plain");
    for gamma in [1, 3, 5] {
        let drafted = LocalModel::load(spec("selfdraft", Some(gamma)))
            .await
            .expect("load speculative");
        assert!(drafted.speculative().is_some_and(|s| s.active));
        for prompt in PROMPTS {
            let (want, want_usage) = run(&plain, prompt, greedy(96)).await;
            let (got, usage) = run(&drafted, prompt, greedy(96)).await;
            assert_eq!(got, want, "gamma {gamma}, prompt {prompt:?}");
            assert_eq!(usage.completion_tokens, want_usage.completion_tokens);
            let s = usage.speculative.expect("speculative usage");
            assert!(s.steps > 0 && s.drafted_tokens == s.steps * gamma as u64);
            // A model drafting for itself agrees with itself.
            assert!(
                s.acceptance_rate() > 0.9,
                "gamma {gamma}: acceptance {} on {prompt:?}",
                s.acceptance_rate()
            );
            assert!(want_usage.speculative.is_none());
        }
    }
}

/// The speculative engine runs without a prefix cache: the same prompt twice gives the same
/// text and the same speculative figures (a prefix-cache hit would restore the target's cache
/// only and leave the draft without one).
#[tokio::test(flavor = "multi_thread")]
async fn repeated_prompts_do_not_reuse_caches() {
    let drafted = LocalModel::load(spec("selfdraft", Some(3)))
        .await
        .expect("load speculative");
    let prompt = PROMPTS[0];
    let (first, u1) = run(&drafted, prompt, greedy(48)).await;
    let (other, _) = run(&drafted, PROMPTS[1], greedy(16)).await;
    let (second, u2) = run(&drafted, prompt, greedy(48)).await;
    assert_eq!(first, second);
    assert_ne!(first, other);
    let (s1, s2) = (u1.speculative.unwrap(), u2.speculative.unwrap());
    assert_eq!(
        (s1.steps, s1.accepted_tokens, u1.prompt_tokens),
        (s2.steps, s2.accepted_tokens, u2.prompt_tokens)
    );
}

/// Sampling with a draft: a seed fixes the output, and different seeds differ.
#[tokio::test(flavor = "multi_thread")]
async fn seeded_speculative_sampling_is_reproducible() {
    let drafted = LocalModel::load(spec("selfdraft", Some(3)))
        .await
        .expect("load speculative");
    let sampling = |seed| Sampling {
        temperature: Some(0.9),
        max_tokens: Some(40),
        seed: Some(seed),
        ..Sampling::default()
    };
    let prompt = "Tell me a short story about a robot.";
    let (a, ua) = run(&drafted, prompt, sampling(5)).await;
    let (b, _) = run(&drafted, prompt, sampling(5)).await;
    let (c, _) = run(&drafted, prompt, sampling(6)).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let s = ua.speculative.unwrap();
    // Same model both sides: p and q agree up to rounding, so nearly all are accepted.
    assert!(s.acceptance_rate() > 0.9, "{s:?}");
}
