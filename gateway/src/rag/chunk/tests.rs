use proptest::prelude::*;

use super::*;

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

fn size(max: usize, overlap: usize) -> ChunkSize {
    ChunkSize {
        max_tokens: max,
        overlap_tokens: overlap,
    }
}

#[test]
fn headings_start_chunks_and_name_them() {
    let doc = "Intro line.\n\n# Guide\n\nFirst para.\n\n## Install\n\nRun it.\n\n# Other\n\nMore.";
    let c = chunk(doc, size(50, 5), &words);
    let titles: Vec<Option<&str>> = c.iter().map(|c| c.title.as_deref()).collect();
    assert_eq!(
        titles,
        [None, Some("Guide"), Some("Guide › Install"), Some("Other")]
    );
    assert_eq!(c[2].text, "Run it.");
    assert_eq!(c[2].embed_text(), "Guide › Install\n\nRun it.");
    assert_eq!(c.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
}

#[test]
fn paragraphs_are_packed_and_cut_with_an_overlap() {
    let para = |n: usize| format!("Sentence {n} has five words.");
    let doc: Vec<String> = (0..10).map(para).collect();
    let c = chunk(&doc.join("\n\n"), size(12, 5), &words);
    assert!(c.len() > 3, "{c:#?}");
    for w in c.windows(2) {
        assert!(w[0].tokens <= 12 && w[1].tokens <= 12);
        // The last paragraph of one chunk opens the next.
        let last = w[0].text.rsplit("\n\n").next().unwrap();
        assert!(
            w[1].text.starts_with(last),
            "{:?} / {:?}",
            w[0].text,
            w[1].text
        );
    }
}

#[test]
fn long_paragraphs_split_by_sentence_then_by_word() {
    let long = "one two three four five six seven eight nine ten eleven twelve";
    let doc = format!("Short one. {long}. Tail here.");
    let c = chunk(&doc, size(5, 0), &words);
    assert!(c.iter().all(|c| c.tokens <= 5), "{c:#?}");
    let all: Vec<&str> = c.iter().flat_map(|c| c.text.split_whitespace()).collect();
    assert_eq!(all.first(), Some(&"Short"));
    assert!(all.contains(&"twelve."));
}

#[test]
fn code_fences_are_not_headings() {
    let doc = "# Real\n\n```sh\n# not a heading\necho hi\n```\n";
    let c = chunk(doc, size(50, 0), &words);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].title.as_deref(), Some("Real"));
    assert!(c[0].text.contains("# not a heading"));
}

#[test]
fn html_becomes_headed_text() {
    let html = "<html><head><style>p{}</style><script>alert('x<y')</script></head><body>\
        <h1>Title &amp; more</h1><p>First&nbsp;para &lt;b&gt;</p><!-- hidden --><ul><li>a</li><li>b</li></ul>\
        <h2>Sub</h2><p>Text&#33;</p></body></html>";
    let md = html_to_markdown(html);
    assert_eq!(
        md,
        "# Title & more\n\nFirst para <b>\n\n- a\n- b\n\n## Sub\n\nText!"
    );
    let c = chunk(&md, size(50, 0), &words);
    assert_eq!(c[1].title.as_deref(), Some("Title & more › Sub"));
}

proptest! {
    #[test]
    fn every_word_lands_in_a_chunk_within_budget(
        doc in "([a-z]{1,8}[ .\n]{1,3}|#{1,3} [a-z]{1,6}\n){0,80}",
        max in 4usize..40,
        overlap in 0usize..20,
    ) {
        let c = chunk(&doc, size(max, overlap), &words);
        let mut seen = std::collections::HashSet::new();
        for ch in &c {
            prop_assert!(ch.tokens <= max, "{} > {}", ch.tokens, max);
            for w in ch.embed_text().split_whitespace() {
                seen.insert(w.trim_matches(|c: char| !c.is_alphanumeric()).to_string());
            }
        }
        for w in doc.split_whitespace() {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric());
            if !w.is_empty() {
                prop_assert!(seen.contains(w), "{w:?} lost from {doc:?}");
            }
        }
    }

    #[test]
    fn arbitrary_html_never_panics(html in ".{0,300}") {
        let _ = html_to_markdown(&html);
    }
}
