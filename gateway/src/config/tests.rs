use super::*;

/// This crate's directory, read at run time: the shared target dir may hold a test binary
/// compiled in another checkout, whose compile-time path would be stale.
fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Parses `src`, with `auth: none` appended when it has no `auth:` (so that the other
/// sections' tests keep their line numbers); [`parse_exact`] adds nothing.
fn parse(src: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    if src.lines().any(|l| l.starts_with("auth:")) {
        parse_exact(src, vars)
    } else {
        parse_exact(&format!("{src}auth: none\n"), vars)
    }
}

fn parse_exact(src: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::from_str_with_env(src, Path::new("/nonexistent/cfg.yaml"), vars)
}

const REMOTE: &str = "\
server:
  listen: 127.0.0.1:9000
models:
  - id: up
    backend: remote
    base_url: http://127.0.0.1:1/v1/
";

#[test]
fn parses_a_remote_model_with_defaults() {
    let c = parse(REMOTE, &[]).unwrap();
    assert_eq!(c.server.listen.port(), 9000);
    assert_eq!(c.server.body_limit_bytes, 1 << 20);
    let BackendConfig::Remote(r) = &c.models[0].backend else {
        panic!("remote expected")
    };
    assert_eq!(r.base_url, "http://127.0.0.1:1/v1");
    assert_eq!(r.upstream_model, "up");
}

#[test]
fn unknown_key_names_file_key_and_line() {
    let src = REMOTE.replace("    base_url", "    colour: red\n    base_url");
    let err = parse(&src, &[]).unwrap_err().to_string();
    assert!(
        err.starts_with("/nonexistent/cfg.yaml:6: models[0]"),
        "{err}"
    );
    assert!(err.contains("unknown field `colour`"), "{err}");
}

#[test]
fn bad_listen_is_located() {
    let err = parse(&REMOTE.replace("127.0.0.1:9000", "localhost"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/nonexistent/cfg.yaml:2: server.listen:"),
        "{err}"
    );
}

#[test]
fn missing_local_file_is_located() {
    let src = "models:\n  - id: m\n    backend: local\n    path: nothere.gguf\n";
    let err = parse(src, &[]).unwrap_err().to_string();
    assert!(
        err.starts_with("/nonexistent/cfg.yaml:4: models[0].path:"),
        "{err}"
    );
    assert!(err.contains("scripts/fetch-models"), "{err}");
}

#[test]
fn keys_of_the_other_backend_are_refused() {
    let src = format!("{REMOTE}    dtype: f32\n");
    let err = parse(&src, &[]).unwrap_err().to_string();
    assert!(
        err.contains(":7: models[0].dtype: not allowed for backend remote"),
        "{err}"
    );
}

#[test]
fn duplicate_ids_are_refused() {
    let src = format!("{REMOTE}  - id: up\n    backend: remote\n    base_url: http://x\n");
    let err = parse(&src, &[]).unwrap_err().to_string();
    assert!(
        err.contains(":7: models[1].id: duplicate model id `up`"),
        "{err}"
    );
}

#[test]
fn env_overrides_apply_and_are_named_in_errors() {
    let c = parse(
        REMOTE,
        &[
            ("GATEHOUSE__SERVER__LISTEN", "0.0.0.0:7"),
            ("GATEHOUSE__AUTH", "{none: {allow_remote: true}}"),
        ],
    )
    .unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:7");
    let err = parse(REMOTE, &[("GATEHOUSE__SERVER__MAX_IN_FLIGHT", "lots")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("GATEHOUSE__SERVER__MAX_IN_FLIGHT"), "{err}");
    assert!(err.contains("server.max_in_flight"), "{err}");
}

#[test]
fn wrong_type_is_located() {
    let err = parse(
        &REMOTE.replace("listen: 127.0.0.1:9000", "listen: [1]"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("/nonexistent/cfg.yaml:2: server.listen:"),
        "{err}"
    );
}

#[test]
fn shipped_configs_are_valid() {
    let root = crate_dir().join("../config");
    // speculative.yaml needs the Qwen models, which only bench/speculative fetches.
    for name in [
        "gatehouse.yaml",
        "remote.example.yaml",
        "selfdraft.yaml",
        "fleet.example.yaml",
    ] {
        let src = std::fs::read_to_string(root.join(name)).unwrap();
        // The default config needs SmolLM2, which the test command fetches first.
        Config::from_str_with_env(&src, &root.join(name), std::iter::empty()).unwrap();
    }
}

#[test]
fn local_models_batch_a_bounded_number_of_sequences() {
    let model = crate_dir().join("../models/smollm2-135m-instruct-q4_1.gguf");
    let src = |extra: &str| {
        format!(
            "models:\n  - id: m\n    backend: local\n    path: {}\n{extra}",
            model.display()
        )
    };
    let c = parse(&src(""), &[]).unwrap();
    assert_eq!(c.models[0].max_concurrent, LOCAL_BATCH);
    let c = parse(&src("    max_concurrent: 2\n"), &[]).unwrap();
    assert_eq!(c.models[0].max_concurrent, 2);
    let err = parse(&src("    max_concurrent: 65\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            ":5: models[0].max_concurrent: local models batch at most 64 sequences per engine"
        ),
        "{err}"
    );
}

#[test]
fn api_key_comes_from_the_named_variable() {
    let src = format!("{REMOTE}    api_key_env: UP_KEY\n");
    let c = parse(&src, &[("UP_KEY", "sekrit")]).unwrap();
    let BackendConfig::Remote(r) = &c.models[0].backend else {
        panic!("remote expected")
    };
    assert_eq!(r.api_key.as_deref(), Some("sekrit"));
    let err = parse(&src, &[]).unwrap_err().to_string();
    assert!(
        err.contains(":7: models[0].api_key_env: environment variable UP_KEY is not set"),
        "{err}"
    );
}

#[test]
fn draft_settings_are_checked_and_located() {
    let model = crate_dir().join("../models/smollm2-135m-instruct-q4_1.gguf");
    let local = |extra: &str| {
        format!(
            "models:\n  - id: m\n    backend: local\n    path: {}\n{extra}",
            model.display()
        )
    };
    let draft = format!("    draft: {}\n", model.display());
    let c = parse(&local(&format!("{draft}    speculative: auto\n")), &[]).unwrap();
    let BackendConfig::Local(l) = &c.models[0].backend else {
        panic!("local expected")
    };
    let d = l.draft.as_ref().unwrap();
    assert_eq!((d.gamma, d.mode), (4, engine::SpeculativeMode::Auto));

    let cases = [
        (
            local("    gamma: 3\n"),
            ":5: models[0].gamma: needs `draft:`",
        ),
        (
            local("    speculative: on\n"),
            ":5: models[0].speculative: needs `draft:`",
        ),
        (
            local(&format!("{draft}    gamma: 0\n")),
            ":6: models[0].gamma: must be between 1 and 16",
        ),
        (
            local(&format!("{draft}    gamma: 17\n")),
            ":6: models[0].gamma: must be between 1 and 16",
        ),
        (
            local("    draft: nothere.gguf\n"),
            ":5: models[0].draft: /nonexistent/nothere.gguf does not exist",
        ),
        (
            local(&format!("{draft}    speculative: maybe\n")),
            ":6: models[0].speculative: unknown variant `maybe`",
        ),
        (
            format!("{REMOTE}{draft}"),
            ":7: models[0].draft: not allowed for backend remote",
        ),
    ];
    for (src, want) in cases {
        let err = parse(&src, &[]).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?}, got {err}");
    }
}

#[test]
fn policies_are_checked() {
    let src = format!("{REMOTE}policies:\n  dir: /nonexistent/policies\n");
    let err = parse(&src, &[]).unwrap_err().to_string();
    assert_eq!(
        err,
        "/nonexistent/cfg.yaml:8: policies.dir: /nonexistent/policies is not a directory"
    );
    let dir = crate_dir().join("../policies");
    let src = format!(
        "{REMOTE}policies:\n  dir: {}\n  poll_interval_ms: 250\n",
        dir.display()
    );
    let c = parse(&src, &[]).unwrap();
    let p = c.policies.expect("policies on");
    assert!(p.watch);
    assert_eq!(p.poll_interval, Duration::from_millis(250));
}

#[test]
fn auth_must_be_given_explicitly() {
    let err = parse_exact(REMOTE, &[]).unwrap_err().to_string();
    assert!(
        err.starts_with("/nonexistent/cfg.yaml: auth: required"),
        "{err}"
    );
    assert!(err.contains("`auth: none`"), "{err}");
    let c = parse_exact(&format!("{REMOTE}auth: none\n"), &[]).unwrap();
    assert!(matches!(
        c.auth,
        AuthConfig::None {
            open_admin: false,
            allow_remote: false
        }
    ));
    assert!(!c.auth.admin_open_to_all());
    let err = parse_exact(&format!("{REMOTE}auth: off\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":7: auth: invalid value: string \"off\""),
        "{err}"
    );
}

#[test]
fn auth_none_stays_on_loopback_and_keeps_admin_closed_unless_told() {
    let on = |listen: &str, auth: &str| {
        parse_exact(
            &format!("{}{auth}", REMOTE.replace("127.0.0.1:9000", listen)),
            &[],
        )
    };
    for listen in ["0.0.0.0:9000", "10.1.2.3:9000", "\"[::]:9000\""] {
        let err = on(listen, "auth: none\n").unwrap_err().to_string();
        assert!(
            err.starts_with("/nonexistent/cfg.yaml:2: server.listen: ")
                && err.contains("not a loopback address")
                && err.contains("allow_remote: true"),
            "{listen}: {err}"
        );
    }
    assert!(on("\"[::1]:9000\"", "auth: none\n").is_ok());
    let grpc = parse_exact(
        &format!(
            "{}auth: none\n",
            REMOTE.replace(
                "  listen: 127.0.0.1:9000\n",
                "  listen: 127.0.0.1:9000\n  grpc_listen: 0.0.0.0:9001\n"
            )
        ),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        grpc.contains(":3: server.grpc_listen: `0.0.0.0:9001`"),
        "{grpc}"
    );
    let c = on(
        "0.0.0.0:9000",
        "auth:\n  none:\n    allow_remote: true\n    open_admin: true\n",
    )
    .unwrap();
    assert!(c.auth.admin_open_to_all());
    let err = on(
        "127.0.0.1:9000",
        "auth:\n  none: {open_admin: yes please}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(":8: auth.none.open_admin:"), "{err}");
    let err = on(
        "127.0.0.1:9000",
        "auth:\n  keys:\n    - id: a\n      tenant: t\n      sha256: 00\n  none: {}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("auth.none: `none:` serves without keys"),
        "{err}"
    );
}

const KEYS: &str = "\
auth:
  keys:
    - id: app
      tenant: acme
      key_env: APP_KEY
      limits:
        requests_per_minute: 60
    - id: ops
      tenant: ops
      role: admin
      sha256: 2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824
tenants:
  acme:
    models: [up]
    policy: strict
    limits:
      tokens_per_minute: 1000
      concurrent: 2
  \"*\": {}
";

#[test]
fn keys_and_tenants_are_parsed() {
    let c = parse(&format!("{REMOTE}{KEYS}"), &[("APP_KEY", "gh_app")]).unwrap();
    let AuthConfig::Keys { keys, redis_keys } = &c.auth else {
        panic!("keys expected")
    };
    assert!(!redis_keys);
    assert_eq!(keys[0].sha256, crate::auth::hash_key("gh_app"));
    assert_eq!(keys[0].limits.requests_per_minute, Some(60));
    assert_eq!(keys[0].limits.effective_burst(), 6);
    assert_eq!(keys[1].role, KeyRole::Admin);
    assert_eq!(keys[1].sha256, crate::auth::hash_key("hello"));
    let acme = c.tenants.get("acme").unwrap();
    assert_eq!(acme.policy.as_deref(), Some("strict"));
    assert!(acme.allows("up") && !acme.allows("other"));
    assert_eq!(acme.limits.concurrent, Some(2));
    assert_eq!(c.tenants.get("ops").unwrap().id, "*");
}

#[test]
fn bad_keys_tenants_and_limits_name_their_line() {
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            format!("{REMOTE}{KEYS}"),
            vec![],
            ":11: auth.keys[0].key_env: environment variable APP_KEY is not set",
        ),
        (
            format!(
                "{REMOTE}{}",
                KEYS.replace("      key_env: APP_KEY\n", "      key: gh_plain\n")
            ),
            vec![],
            ":11: auth.keys[0].key: keys are not written in the config in plain text",
        ),
        (
            format!("{REMOTE}{}", KEYS.replace("2CF24DBA", "XYZ")),
            vec![("APP_KEY", "k")],
            ":17: auth.keys[1].sha256: must be 64 hex digits",
        ),
        (
            format!("{REMOTE}{}", KEYS.replace("  \"*\": {}\n", "")),
            vec![("APP_KEY", "k")],
            ":15: auth.keys[1].tenant: no tenant `ops` under tenants: (configured: acme;",
        ),
        (
            format!(
                "{REMOTE}{}",
                KEYS.replace("models: [up]", "models: [up, nope]")
            ),
            vec![("APP_KEY", "k")],
            ":20: tenants.acme.models[1]: no model `nope` under models:",
        ),
        (
            format!(
                "{REMOTE}{}",
                KEYS.replace("requests_per_minute: 60", "requests_per_minute: 0")
            ),
            vec![("APP_KEY", "k")],
            ":13: auth.keys[0].limits.requests_per_minute: must be greater than 0",
        ),
        (
            format!("{REMOTE}{}", KEYS.replace("concurrent: 2", "burst: 2")),
            vec![("APP_KEY", "k")],
            ":24: tenants.acme.limits.burst: only with requests_per_minute",
        ),
        (
            format!("{REMOTE}{}", KEYS.replace("id: ops", "id: app")),
            vec![("APP_KEY", "k")],
            ":14: auth.keys[1].id: duplicate key id `app`",
        ),
        (
            format!("{REMOTE}auth:\n  keys: []\n"),
            vec![],
            ":8: auth.keys: no keys",
        ),
        (
            format!("{REMOTE}auth:\n  redis_keys: true\n"),
            vec![],
            ":8: auth.redis_keys: needs a `redis:` section",
        ),
    ];
    for (src, vars, want) in cases {
        let err = parse(&src, &vars).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?}, got {err}");
    }
}

#[test]
fn redis_and_cache_sections() {
    let c = parse(
        &format!("{REMOTE}redis:\n  url: redis://:pw@10.0.0.1:6379/2\n  on_error:\n    cache: fail_closed\ncache:\n  store: redis\n  ttl_secs: 60\n"),
        &[],
    )
    .unwrap();
    let r = c.redis.unwrap();
    assert_eq!(r.timeout, Duration::from_millis(250));
    assert_eq!(r.prefix, "gatehouse");
    assert_eq!(r.on_error.cache, FailMode::Closed);
    assert_eq!(r.on_error.auth, FailMode::Closed);
    assert_eq!(r.on_error.rate_limits, FailMode::Open);
    let cache = c.cache.unwrap();
    assert_eq!(
        (cache.store, cache.ttl),
        (CacheStore::Redis, Duration::from_secs(60))
    );
    assert!(cache.seeded);
    for (extra, want) in [
        (
            "cache:\n  store: redis\n",
            ":8: cache.store: `redis` needs a `redis:` section",
        ),
        (
            "redis:\n  url: http://x\n",
            ":8: redis.url: must start with redis://",
        ),
        (
            "redis:\n  url: rediss://x\n",
            ":8: redis.url: rediss:// (TLS) is not built in",
        ),
        (
            "redis:\n  timeout_ms: 0\n",
            ":8: redis.timeout_ms: must be greater than 0",
        ),
        (
            "redis:\n  on_error:\n    cache: maybe\n",
            ":9: redis.on_error.cache: unknown variant `maybe`",
        ),
        (
            "cache:\n  when: always\n",
            ":8: cache.when: unknown variant `always`",
        ),
    ] {
        let err = parse(&format!("{REMOTE}{extra}"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "want {want:?}, got {err}");
    }
}

#[test]
fn redis_cluster_takes_seed_nodes_from_a_list_or_a_variable() {
    let c = parse(
        &format!("{REMOTE}redis:\n  mode: cluster\n  urls: [redis://10.0.0.1:7000, redis://10.0.0.2:7000]\n"),
        &[],
    )
    .unwrap();
    let r = c.redis.unwrap();
    assert_eq!(r.mode, RedisMode::Cluster);
    assert_eq!(r.nodes, ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    let c = parse(
        &format!("{REMOTE}redis:\n  mode: cluster\n  url_env: SEEDS\n"),
        &[("SEEDS", "redis://a:7000, redis://b:7000")],
    )
    .unwrap();
    assert_eq!(c.redis.unwrap().nodes, ["redis://a:7000", "redis://b:7000"]);
    let standalone = parse(&format!("{REMOTE}redis:\n  url: redis://a:6379\n"), &[]).unwrap();
    assert_eq!(standalone.redis.unwrap().mode, RedisMode::Standalone);
    for (extra, want) in [
        (
            "redis:\n  urls: [redis://a:1]\n",
            ":8: redis.urls: a list of nodes is for `mode: cluster`",
        ),
        (
            "redis:\n  mode: cluster\n  urls: []\n",
            ":9: redis.urls: list at least one seed node",
        ),
        (
            "redis:\n  mode: cluster\n  urls: [redis://a:1, http://b:2]\n",
            ":9: redis.urls[1]: must start with redis://",
        ),
        (
            "redis:\n  mode: cluster\n  url: redis://a:1\n  urls: [redis://b:2]\n",
            "redis.urls: give one of `url`, `url_env` and `urls`",
        ),
        (
            "redis:\n  mode: sharded\n",
            ":8: redis.mode: unknown variant `sharded`",
        ),
    ] {
        let err = parse(&format!("{REMOTE}{extra}"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "want {want:?}, got {err}");
    }
}

#[test]
fn embedding_models_are_local_directories_without_chat_keys() {
    let model = |extra: &str, backend: &str, path: &str| {
        format!("models:\n  - id: e\n    backend: {backend}\n    kind: embedding\n    path: {path}\n{extra}")
    };
    let err = |src: String| parse(&src, &[]).unwrap_err().to_string();
    let e = err(model("", "local", "/nonexistent/minilm"));
    assert!(
        e.contains("models[0].path: /nonexistent/minilm has no config.json"),
        "{e}"
    );
    let e = err(model("    dtype: f16\n", "local", "/x"));
    assert!(
        e.contains("models[0].dtype: not allowed for kind embedding"),
        "{e}"
    );
    let e = err(
        "models:\n  - id: e\n    backend: remote\n    kind: embedding\n    base_url: http://h/v1\n"
            .to_string(),
    );
    assert!(
        e.contains("models[0].kind: embedding models are served in-process"),
        "{e}"
    );
    let e = err(REMOTE.replace("    base_url", "    max_input_tokens: 9\n    base_url"));
    assert!(
        e.contains("max_input_tokens: not allowed for kind chat"),
        "{e}"
    );
    let dir = crate_dir().join("../models/all-minilm-l6-v2");
    let c = parse(&model("", "local", &dir.display().to_string()), &[]).unwrap();
    let BackendConfig::LocalEmbedding(l) = &c.models[0].backend else {
        panic!("embedding expected")
    };
    assert_eq!((l.max_input_tokens, c.models[0].max_concurrent), (256, 1));
}

#[test]
fn rag_section_is_checked_and_located() {
    let minilm = crate_dir().join("../models/all-minilm-l6-v2");
    let with = |rag: &str| {
        format!(
            "{REMOTE}  - id: e\n    backend: local\n    kind: embedding\n    path: {}\nrag:\n{rag}",
            minilm.display()
        )
    };
    let c = parse(&with("  store: edge\n"), &[]).unwrap();
    let rag = c.rag.expect("rag configured");
    assert_eq!(rag.embedding_model, "e");
    assert_eq!((rag.chunk.max_tokens, rag.chunk.overlap_tokens), (200, 40));
    let StoreConfig::Edge { data_dir } = &rag.store else {
        panic!("edge expected")
    };
    assert_eq!(data_dir, Path::new("/nonexistent/../data/rag"));

    let err = |rag: &str, vars: &[(&str, &str)]| parse(&with(rag), vars).unwrap_err().to_string();
    let e = err("  embedding_model: up\n", &[]);
    assert!(
        e.contains(":12: rag.embedding_model: `up` is not a `kind: embedding` model"),
        "{e}"
    );
    let e = err("  chunk_tokens: 400\n", &[]);
    assert!(
        e.contains("rag.chunk_tokens: must be between 16 and 255"),
        "{e}"
    );
    let e = err("  overlap_tokens: 150\n", &[]);
    assert!(
        e.contains("rag.overlap_tokens: must be at most half"),
        "{e}"
    );
    let e = err("  url: http://q:6334\n", &[]);
    assert!(e.contains("rag.url: not allowed for store edge"), "{e}");
    let e = err("  store: qdrant\n", &[]);
    assert!(e.contains("rag.url: required for store qdrant"), "{e}");
    let e = err(
        "  store: qdrant\n  url: http://q:6334\n  api_key_env: QKEY\n",
        &[],
    );
    assert!(
        e.contains("rag.api_key_env: environment variable QKEY is not set"),
        "{e}"
    );
    let c = parse(
        &with("  store: qdrant\n  url: http://q:6334\n  api_key_env: QKEY\n"),
        &[("QKEY", "k")],
    )
    .unwrap();
    let Some(StoreConfig::Qdrant {
        api_key, timeout, ..
    }) = c.rag.map(|r| r.store)
    else {
        panic!("qdrant expected")
    };
    assert_eq!(
        (api_key.as_deref(), timeout),
        (Some("k"), Duration::from_secs(5))
    );
    // No embedding model at all.
    let e = parse(&format!("{REMOTE}rag:\n  store: edge\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("retrieval needs a `kind: embedding` model"),
        "{e}"
    );
}

#[test]
fn pooled_models_list_their_backends() {
    let src = "models:\n  - id: pool\n    backend: remote\n    base_urls: [\"http://a:1/v1/\", \"http://b:1/v1\"]\n    routing: round_robin\n";
    let c = parse(src, &[]).unwrap();
    let m = &c.models[0];
    let BackendConfig::Remote(first) = &m.backend else {
        panic!("remote expected")
    };
    assert_eq!(first.base_url, "http://a:1/v1");
    assert_eq!(m.replicas.len(), 1);
    assert_eq!(m.routing, crate::config::RoutingPolicy::RoundRobin);
    let model = crate_dir().join("../models/smollm2-135m-instruct-q4_1.gguf");
    let local = |extra: &str| {
        format!(
            "models:\n  - id: m\n    backend: local\n    path: {}\n{extra}",
            model.display()
        )
    };
    let c = parse(&local("    replicas: 3\n    prefix_cache: 0\n"), &[]).unwrap();
    assert_eq!(
        (c.models[0].replicas.len(), c.models[0].max_concurrent),
        (2, 3 * LOCAL_BATCH)
    );
    let BackendConfig::Local(l) = &c.models[0].backend else {
        panic!("local expected")
    };
    assert_eq!(l.prefix_cache, 0);
    for (src, want) in [
        (
            "models:\n  - id: p\n    backend: remote\n    base_url: http://a/v1\n    base_urls: [http://b/v1]\n".to_string(),
            ":5: models[0].base_urls: give base_url or base_urls, not both",
        ),
        (
            "models:\n  - id: p\n    backend: remote\n    base_urls:\n      - http://a/v1\n      - ftp://b\n".to_string(),
            ":6: models[0].base_urls[1]: `ftp://b` must start with http:// or https://",
        ),
        (
            "models:\n  - id: p\n    backend: remote\n    base_url: http://exa mple/v1\n".to_string(),
            ":4: models[0].base_url: `http://exa mple/v1` is not a valid URL: invalid international domain name",
        ),
        (
            "models:\n  - id: p\n    backend: remote\n    base_urls: []\n".to_string(),
            ":4: models[0].base_urls: list at least one URL",
        ),
        (local("    replicas: 0\n"), ":5: models[0].replicas: must be between 1 and 16"),
        (local("    replicas: 2\n    max_concurrent: 193\n"), ":6: models[0].max_concurrent: local models batch at most 64 sequences per engine (replica)"),
        (local("    prefix_cache: 999\n"), ":5: models[0].prefix_cache: at most 256"),
        (local("    routing: nearest\n"), ":5: models[0].routing: unknown variant `nearest`"),
    ] {
        let err = parse(&src, &[]).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?}, got {err}");
    }
}

#[test]
fn audit_and_telemetry_sections() {
    let c = parse(REMOTE, &[]).unwrap();
    assert!(c.audit.is_none());
    assert!(c.telemetry.otlp_endpoint.is_none());
    assert_eq!(c.telemetry.sample_ratio, 1.0);

    let key = "k".repeat(MIN_HMAC_KEY_BYTES);
    let src = format!(
        "{REMOTE}audit:\n  dir: audit\n  on_full: fail_closed\n  hmac_key_env: AK\n  queue: 8\ntelemetry:\n  otlp_endpoint: http://collector:4317/\n  sample_ratio: 0.25\n"
    );
    let c = parse(&src, &[("AK", key.as_str())]).unwrap();
    let a = c.audit.unwrap();
    assert_eq!(a.dir, Path::new("/nonexistent/audit"));
    assert_eq!(a.on_full, OnFull::FailClosed);
    assert_eq!(a.queue, 8);
    assert!(a.fsync);
    assert_eq!(a.checkpoint_every, 1000);
    assert_eq!(a.hmac_key.as_deref(), Some(key.as_bytes()));
    assert_eq!(
        c.telemetry.otlp_endpoint.as_deref(),
        Some("http://collector:4317")
    );
    assert_eq!(c.telemetry.sample_ratio, 0.25);

    // A named key that is missing or short refuses to start, with file, line and key.
    let err = parse(&src, &[]).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "/nonexistent/cfg.yaml:10: audit.hmac_key_env: environment variable AK is not set"
        ),
        "{err}"
    );
    let err = parse(&src, &[("AK", "short")]).unwrap_err().to_string();
    assert!(err.contains("has 5 bytes; at least 32"), "{err}");
    let err = parse(
        &src.replace("fail_closed", "block"),
        &[("AK", key.as_str())],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("audit.on_full: unknown variant `block`"),
        "{err}"
    );
    let err = parse(
        &src.replace("queue: 8", "queue: 0"),
        &[("AK", key.as_str())],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("audit.queue: must be greater than 0"), "{err}");
    let err = parse(&src.replace("0.25", "1.5"), &[("AK", key.as_str())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":14: telemetry.sample_ratio: 1.5 is not between 0 and 1"),
        "{err}"
    );
    let err = parse(
        &src.replace("http://collector", "collector"),
        &[("AK", key.as_str())],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("telemetry.otlp_endpoint: `collector:4317/` is not an http"),
        "{err}"
    );
}

#[test]
fn grpc_listen_and_drift_are_validated_where_written() {
    let with = |extra: &str| parse(&format!("{REMOTE}{extra}"), &[]);
    let c = with("drift: {}\n").unwrap();
    let d = c.drift.unwrap();
    assert_eq!((d.reference_requests, d.window_requests), (500, 500));
    assert!(d.embeddings.is_none() && c.server.grpc_listen.is_none());
    let src = REMOTE.replace(
        "  listen: 127.0.0.1:9000\n",
        "  listen: 127.0.0.1:9000\n  grpc_listen: 127.0.0.1:9001\n",
    );
    assert_eq!(
        parse(&src, &[]).unwrap().server.grpc_listen.unwrap().port(),
        9001
    );
    for (src, at) in [
        (
            REMOTE.replace(
                "  listen: 127.0.0.1:9000\n",
                "  listen: 127.0.0.1:9000\n  grpc_listen: 127.0.0.1:9000\n",
            ),
            "server.grpc_listen:",
        ),
        (
            REMOTE.replace(
                "  listen: 127.0.0.1:9000\n",
                "  listen: 127.0.0.1:9000\n  grpc_listen: grpc\n",
            ),
            "server.grpc_listen:",
        ),
        (
            format!("{REMOTE}drift:\n  window_requests: 10\n"),
            "drift.min_requests:",
        ),
        (
            format!("{REMOTE}drift:\n  psi_threshold: -1\n"),
            "drift.psi_threshold:",
        ),
        (
            format!("{REMOTE}drift:\n  embeddings: {{model: up}}\n"),
            "drift.embeddings.model:",
        ),
        (
            format!("{REMOTE}drift:\n  baseline_file: nope.json\n"),
            "drift.baseline_file:",
        ),
    ] {
        let err = parse(&src, &[]).unwrap_err().to_string();
        assert!(err.contains(at), "{err}");
    }
}
