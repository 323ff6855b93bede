//! A GGUF model loaded in-process: loading and generation streams.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use mistralrs::core::{
    AdapterPaths, Constraint as LlgConstraint, DefaultSchedulerMethod, DeviceMapSetting,
    GGUFLoaderBuilder, GGUFSpecificConfig, LocalModelPaths, MistralRs, MistralRsBuilder,
    ModelDType, ModelPaths, NormalRequest, Pipeline, Request, RequestMessage, Response,
    SamplingParams, SchedulerConfig, SpeculativeConfig, SpeculativePipeline, StopTokens,
    TokenizationRequest,
};
use mistralrs::{Device, TextMessageRole, TextMessages};
use tokio::sync::mpsc;

use crate::generation::{forward, Generation, Live, LiveCounts};
use crate::sampler::SeededSampler;
use crate::speculative::{AutoDecision, SpeculativeInfo, SpeculativeMode, SpeculativeSequence};
use crate::stop::StopMatcher;
use crate::{
    ChatMessage, Constraint, DType, DraftSpec, EngineError, GenerationEvent, Role, Sampling,
};

/// What to load.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Model id (engine id, metrics label).
    pub id: String,
    /// GGUF file.
    pub path: PathBuf,
    /// Activation and KV-cache dtype (GGUF matmuls run in F32 regardless).
    pub dtype: DType,
    /// Sequences the scheduler runs at once.
    pub max_concurrent: usize,
    /// A draft model for speculative decoding.
    pub draft: Option<DraftSpec>,
    /// Finished sequences whose KV cache is kept for reuse by a later prompt with the same
    /// prefix (mistral.rs' prefix cache); 0 turns it off. Ignored with a draft.
    pub prefix_cache: usize,
}

/// Prefix cache entries when the config does not say (mistral.rs' own default).
pub const DEFAULT_PREFIX_CACHE: usize = 16;

/// A loaded model with its own engine thread.
pub struct LocalModel {
    id: String,
    runner: Arc<MistralRs>,
    /// End-of-sequence tokens, kept out of reach by `Sampling::ignore_eos`.
    eos: Vec<u32>,
    /// Live sequences and the tokens their KV caches hold.
    live: Arc<LiveCounts>,
    max_seq_len: usize,
    speculative: Option<SpeculativeInfo>,
}

/// `speculative: auto` compares plain and speculative decoding on this prompt. The warm-up
/// prompt differs so that the plain engine's prefix cache cannot help the timed run.
const AUTO_WARMUP_PROMPT: &str = "Write a Python function that reverses a string.";
const AUTO_PROMPT: &str =
    "Write a Python function that returns the n-th Fibonacci number, with a docstring.";
const AUTO_TOKENS: usize = 48;
/// How much faster one stream must be with the draft for `auto` to keep it: a pair serves one
/// sequence at a time, where the target alone batches `max_concurrent`, so a tie goes to plain.
pub const AUTO_MIN_GAIN: f64 = 1.1;

fn model_dtype(d: DType) -> ModelDType {
    match d {
        DType::F32 => ModelDType::F32,
        DType::F16 => ModelDType::F16,
        DType::Bf16 => ModelDType::BF16,
        DType::Auto => ModelDType::Auto,
    }
}

/// The first GPU in a CUDA build (CPU when there is none); the CPU otherwise.
fn device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda_if_available(0).unwrap_or(Device::Cpu)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Device::Cpu
    }
}

/// Loads a GGUF pipeline from a local file: tokenizer and chat template come from the GGUF
/// itself, and no Hugging Face code path runs, so nothing touches the network.
pub(crate) fn load_pipeline(
    id: &str,
    path: &std::path::Path,
    dtype: DType,
) -> Result<Arc<tokio::sync::Mutex<dyn Pipeline>>, EngineError> {
    let load_err = |reason: String| EngineError::Load {
        path: path.display().to_string(),
        reason,
    };
    if !path.is_file() {
        return Err(load_err("no such file".into()));
    }
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        id.to_string(),
        vec![file_name],
        GGUFSpecificConfig::default(),
        false,
        None,
    )
    .build();
    let paths: Box<dyn ModelPaths> = Box::new(LocalModelPaths {
        tokenizer_filename: PathBuf::new(),
        config_filename: PathBuf::new(),
        template_filename: None,
        filenames: vec![path.to_path_buf()],
        adapter_paths: AdapterPaths::None,
        gen_conf: None,
        preprocessor_config: None,
        processor_config: None,
        chat_template_json_filename: None,
    });
    let pipeline = loader
        .load_model_from_path(
            &paths,
            &model_dtype(dtype),
            &device(),
            true,
            DeviceMapSetting::dummy(),
            None,
            None,
        )
        .map_err(|e| load_err(format!("{e:#}")))?;
    Ok(pipeline)
}

impl LocalModel {
    /// Loads the model (and its draft, if any) and starts its engine; blocking work runs off
    /// the async threads. With `speculative: auto` both modes are measured first.
    pub async fn load(spec: ModelSpec) -> Result<Self, EngineError> {
        let target = load_pipeline_blocking(spec.id.clone(), spec.path.clone(), spec.dtype).await?;
        let Some(draft) = spec.draft.clone() else {
            return Self::from_pipeline(spec.id, target, spec.max_concurrent, spec.prefix_cache)
                .await;
        };
        let draft_pipeline =
            load_pipeline_blocking(format!("{}-draft", spec.id), draft.path.clone(), spec.dtype)
                .await?;
        let joined = SpeculativePipeline::new(
            target.clone(),
            draft_pipeline,
            SpeculativeConfig {
                gamma: draft.gamma.max(1),
            },
        )
        .map_err(|e| EngineError::Load {
            path: draft.path.display().to_string(),
            reason: format!("cannot draft for {}: {e}", spec.path.display()),
        })?;
        let joined: Arc<tokio::sync::Mutex<dyn Pipeline>> =
            Arc::new(tokio::sync::Mutex::new(joined));
        let mut info = SpeculativeInfo {
            draft: draft
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            gamma: draft.gamma.max(1),
            mode: draft.mode,
            active: true,
            auto: None,
        };
        // The prefix cache would restore the target's KV cache but not the draft's, so a
        // speculative engine runs without one (docs/speculative.md).
        let mut speculative =
            Self::from_pipeline(spec.id.clone(), joined, spec.max_concurrent, 0).await?;
        speculative.speculative = Some(info.clone());
        if draft.mode == SpeculativeMode::On {
            return Ok(speculative);
        }
        let plain =
            Self::from_pipeline(spec.id, target, spec.max_concurrent, spec.prefix_cache).await?;
        let plain_tps = plain.measure_decode().await?;
        let speculative_tps = speculative.measure_decode().await?;
        let decision = AutoDecision {
            plain_tokens_per_second: plain_tps,
            speculative_tokens_per_second: speculative_tps,
            use_draft: speculative_tps > plain_tps * AUTO_MIN_GAIN,
        };
        tracing::info!(
            model = %plain.id,
            plain_tokens_per_second = format!("{plain_tps:.2}"),
            speculative_tokens_per_second = format!("{speculative_tps:.2}"),
            use_draft = decision.use_draft,
            "speculative: auto measured both modes"
        );
        info.active = decision.use_draft;
        info.auto = Some(decision);
        let mut chosen = if decision.use_draft {
            speculative
        } else {
            plain
        };
        chosen.speculative = Some(info);
        Ok(chosen)
    }

    /// Greedy decode rate on a fixed prompt, after an untimed warm-up: output tokens after
    /// the first, per second after the first arrived.
    async fn measure_decode(&self) -> Result<f64, EngineError> {
        let run = |prompt: &str, tokens: usize| {
            let messages = vec![ChatMessage {
                role: Role::User,
                content: prompt.to_string(),
            }];
            let sampling = Sampling {
                temperature: Some(0.0),
                max_tokens: Some(tokens),
                ..Sampling::default()
            };
            self.generate(messages, sampling)
        };
        run(AUTO_WARMUP_PROMPT, 8)?.run_to_end().await?;
        let mut generation = run(AUTO_PROMPT, AUTO_TOKENS)?;
        let mut first = None;
        while let Some(event) = generation.next().await {
            match event? {
                GenerationEvent::Delta(_) => {
                    first.get_or_insert_with(Instant::now);
                }
                GenerationEvent::Finished { usage, .. } => {
                    let (Some(first), true) = (first, usage.completion_tokens > 1) else {
                        break;
                    };
                    let secs = first.elapsed().as_secs_f64().max(1e-9);
                    return Ok((usage.completion_tokens - 1) as f64 / secs);
                }
            }
        }
        Err(EngineError::Internal(
            "speculative: auto warm-up produced too few tokens to measure".into(),
        ))
    }

    /// Starts an engine over a built pipeline.
    pub(crate) async fn from_pipeline(
        id: String,
        pipeline: Arc<tokio::sync::Mutex<dyn Pipeline>>,
        max_concurrent: usize,
        prefix_cache: usize,
    ) -> Result<Self, EngineError> {
        let (max_seq_len, eos) = {
            let p = pipeline.lock().await;
            let meta = p.get_metadata();
            (meta.max_seq_len, meta.eos_tok.clone())
        };
        let sched = SchedulerConfig::DefaultScheduler {
            method: DefaultSchedulerMethod::Fixed(
                NonZeroUsize::new(max_concurrent.max(1)).expect("max(1) is non-zero"),
            ),
        };
        let runner = MistralRsBuilder::new(pipeline, sched, false, None)
            .with_model_id(id.clone())
            .with_no_prefix_cache(prefix_cache == 0)
            .with_prefix_cache_n(prefix_cache.max(1))
            .build()
            .await;
        Ok(Self {
            id,
            runner,
            eos,
            live: Arc::default(),
            max_seq_len,
            speculative: None,
        })
    }

    /// Speculative decoding settings and state, for a model with a draft.
    pub fn speculative(&self) -> Option<&SpeculativeInfo> {
        self.speculative.as_ref()
    }

    /// Model id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Longest sequence (prompt + output) the model takes.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Generations whose engine sequence is still alive.
    pub fn active_sequences(&self) -> usize {
        self.live.sequences.load(Ordering::Relaxed)
    }

    /// Tokens held in the KV caches of the live sequences (prompt and output so far). The
    /// prefix cache's entries are not counted: mistral.rs keeps them besides, up to
    /// `prefix_cache` sequences.
    pub fn kv_cache_tokens(&self) -> usize {
        self.live.kv_tokens.load(Ordering::Relaxed)
    }

    /// Tokens of the prompt `messages` make: the chat template applied, with the generation
    /// prompt, as a generation would see them.
    pub async fn prompt_tokens(&self, messages: &[ChatMessage]) -> Result<usize, EngineError> {
        let (tx, mut rx) = mpsc::channel(1);
        let request = Request::Tokenize(TokenizationRequest {
            text: either::Either::Left(text_messages(messages).into()),
            tools: None,
            add_generation_prompt: true,
            add_special_tokens: true,
            enable_thinking: None,
            reasoning_effort: None,
            response: tx,
        });
        let sender = self
            .runner
            .get_sender(Some(&self.id))
            .map_err(|e| EngineError::Internal(format!("{e:?}")))?;
        sender
            .send(request)
            .await
            .map_err(|_| EngineError::EngineGone)?;
        match rx.recv().await {
            Some(Ok(tokens)) => Ok(tokens.len()),
            Some(Err(e)) => Err(EngineError::Validation(format!("{e:#}"))),
            None => Err(EngineError::EngineGone),
        }
    }

    /// Starts generating. Dropping the returned stream cancels the sequence in the engine
    /// (within one token).
    pub fn generate(
        &self,
        messages: Vec<ChatMessage>,
        sampling: Sampling,
    ) -> Result<Generation, EngineError> {
        self.generate_constrained(messages, sampling, Constraint::None)
    }

    /// Like [`LocalModel::generate`], with every token checked against `constraint`: a token
    /// the grammar refuses is replaced by a sample from the allowed ones, and end of sequence
    /// is only allowed once the grammar is complete.
    pub fn generate_constrained(
        &self,
        messages: Vec<ChatMessage>,
        sampling: Sampling,
        constraint: Constraint,
    ) -> Result<Generation, EngineError> {
        if messages.is_empty() {
            return Err(EngineError::Validation(
                "at least one message is required".into(),
            ));
        }
        let speculating = self.speculative.as_ref().is_some_and(|s| s.active);
        if speculating && !constraint.is_none() {
            // The speculative step verifies a whole draft at once; the grammar works token by
            // token, and mistral.rs 0.8.1 refuses the combination mid-generation otherwise.
            return Err(EngineError::Validation(format!(
                "model `{}` decodes speculatively, which cannot apply response_format or \
                 tool_choice grammars; use a model without a draft for constrained output",
                self.id
            )));
        }
        let constraint = match constraint {
            Constraint::None => LlgConstraint::None,
            Constraint::JsonSchema(v) => LlgConstraint::JsonSchema(compact_layout(v)),
            Constraint::Lark(g) => LlgConstraint::Lark(g),
        };
        let text = text_messages(&messages);
        let greedy = sampling.temperature.is_some_and(|t| t <= 0.0);
        // A speculative pipeline asks its sequence's processor for every decision, greedy
        // included; otherwise the processor samples, and greedy needs none.
        let hook = speculating.then(|| Arc::new(SpeculativeSequence::new(&sampling)));
        if speculating && sampling.ignore_eos {
            return Err(EngineError::Validation(format!(
                "model `{}` decodes speculatively, which cannot ignore end of sequence",
                self.id
            )));
        }
        let mut processor: Option<Vec<Arc<dyn mistralrs::core::CustomLogitsProcessor>>> =
            if let Some(hook) = &hook {
                Some(vec![hook.clone() as _])
            } else {
                (!greedy).then(|| {
                    // OpenAI's default temperature is 1.
                    let t = sampling.temperature.unwrap_or(1.0);
                    vec![Arc::new(SeededSampler::new(
                        t,
                        sampling.top_k,
                        sampling.top_p,
                        sampling.seed,
                    )) as _]
                })
            };
        if sampling.ignore_eos {
            // Before the sampler, so that it never sees an end-of-sequence token.
            let ban = Arc::new(BanTokens(self.eos.clone())) as _;
            processor.get_or_insert_with(Vec::new).insert(0, ban);
        }
        let params = SamplingParams {
            // Greedy in the engine; the processor above, when present, has already chosen.
            temperature: Some(0.0),
            max_len: sampling.max_tokens,
            stop_toks: (!sampling.stop.is_empty()).then(|| StopTokens::Seqs(sampling.stop.clone())),
            ..SamplingParams::neutral()
        };
        // The engine awaits each chunk send: a roomy buffer plus a task that drains it
        // promptly keeps one slow client from stalling every other sequence.
        let (tx, rx) = mpsc::channel::<Response>(1024);
        let request = Request::Normal(Box::new(NormalRequest {
            messages: RequestMessage::Chat {
                messages: text.into(),
                enable_thinking: None,
                reasoning_effort: None,
            },
            sampling_params: params,
            response: tx,
            return_logprobs: false,
            // Always streamed: dropping a non-streamed request's receiver panics the engine.
            is_streaming: true,
            id: self.runner.next_request_id(),
            constraint,
            suffix: None,
            tools: None,
            tool_choice: None,
            logits_processors: processor,
            return_raw_logits: false,
            web_search_options: None,
            model_id: Some(self.id.clone()),
            truncate_sequence: false,
        }));
        let sender = self
            .runner
            .get_sender(Some(&self.id))
            .map_err(|e| EngineError::Internal(format!("{e:?}")))?;
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let live = Live::new(self.live.clone());
        let stop = StopMatcher::new(&sampling.stop);
        tokio::spawn(async move {
            if sender.send(request).await.is_err() {
                let _ = out_tx.send(Err(EngineError::EngineGone));
                return;
            }
            forward(rx, out_tx, stop, hook, live).await;
        });
        Ok(Generation::new(out_rx))
    }
}

fn text_messages(messages: &[ChatMessage]) -> TextMessages {
    let mut text = TextMessages::new();
    for m in messages {
        let role = match m.role {
            Role::System => TextMessageRole::System,
            Role::User => TextMessageRole::User,
            Role::Assistant => TextMessageRole::Assistant,
        };
        text = text.add_message(role, &m.content);
    }
    text
}

/// Fixes the JSON layout the grammar admits to `{"a": 1, "b": [2, 3]}` unless the schema sets
/// its own `x-guidance` options: with llguidance's default (any whitespace between tokens)
/// small models wander into runs of blank lines and stray indentation, which cost tokens
/// and read badly. The layout is the one models see most in training.
fn compact_layout(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = schema.as_object_mut() {
        obj.entry("x-guidance").or_insert_with(|| {
            serde_json::json!({
                "whitespace_flexible": false,
                "item_separator": ", ",
                "key_separator": ": ",
            })
        });
    }
    schema
}

async fn load_pipeline_blocking(
    id: String,
    path: PathBuf,
    dtype: DType,
) -> Result<Arc<tokio::sync::Mutex<dyn Pipeline>>, EngineError> {
    tokio::task::spawn_blocking(move || load_pipeline(&id, &path, dtype))
        .await
        .map_err(|e| EngineError::Internal(format!("loader task failed: {e}")))?
}

/// Makes tokens impossible (`Sampling::ignore_eos`).
struct BanTokens(Vec<u32>);

impl mistralrs::core::CustomLogitsProcessor for BanTokens {
    fn apply(
        &self,
        logits: &mistralrs::Tensor,
        _context: &[u32],
    ) -> mistralrs::Result<mistralrs::Tensor> {
        let mut values: Vec<f32> = logits
            .to_dtype(mistralrs::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        for &t in &self.0 {
            if let Some(v) = values.get_mut(t as usize) {
                *v = f32::NEG_INFINITY;
            }
        }
        mistralrs::Tensor::from_vec(values, logits.shape(), logits.device())?
            .to_dtype(logits.dtype())
    }
}
