//! The phrase tables behind the phrase signals, plus the ANSI and negation patterns, kept apart
//! from the matching logic so that tuning a pattern touches only data.

use super::Signal;

/// Word separator in phrase patterns: a literal space in a pattern below stands for this.
const SEP: &str = r"[\s\p{P}\p{S}]+";

/// `(signal, strong, pattern)`, matched on the folded, de-leeted text. In the pattern, a space
/// stands for [`SEP`] and `\b` is an ASCII word boundary.
pub(super) const FOLDED_PHRASES: &[(Signal, bool, &str)] = &[
    // ---- instruction_override -------------------------------------------------------------
    (
        Signal::InstructionOverride,
        true,
        r"\b(?:ignore|disregard|forget|override|bypass|neglect|discard|dismiss|abandon|overlook|skip) (?:(?:all|any|the|these|those|every|each|of) ){0,2}(?:(?:previous|prior|above|earlier|preceding|former|original|initial|foregoing|old|past|given|system|your|all|safety|developer) ){1,3}(?:instructions?|rules|directions?|directives?|prompts?|guidelines|guidance|context|commands?|constraints|guardrails|programming|polic(?:y|ies)|restrictions|orders|training)\b",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"\b(?:ignore|disregard|forget|override|bypass|neglect|discard|dismiss|abandon) (?:all|any|every) (?:of )?(?:the |these |those )?(?:instructions?|rules|directions?|directives?|prompts?|guidelines|commands?|constraints|guardrails|restrictions)\b",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"\b(?:ignore|disregard|forget) (?:all )?(?:of )?(?:the |that |everything )?(?:above|previous|prior|preceding)(?: (?:text|content|input|lines))?(?: and\b| then\b|\s*[.,;:!]|\s*$)",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"\b(?:ignore|disregard|forget) (?:everything|all) (?:(?:you(?:'|\x{2019})?ve|you have|you) (?:been|were) (?:told|given|instructed|taught)|(?:that )?(?:was |is )?(?:said|written|stated) (?:before|above|earlier))\b",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"\bnew (?:system )?(?:instructions?|directives?)\s*:",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"\bnew system (?:instructions?|prompt)\b",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"\bfrom now on,? you (?:will|must|shall|are going to|have to|are now|are no longer)\b",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"\b(?:do not|don(?:'|\x{2019})?t|never) (?:follow|obey|adhere to|comply with) (?:(?:your|the|any|those|these) (?:(?:previous|original|initial|system|safety|content) )?(?:rules|guidelines|polic(?:y|ies)|programming|restrictions|content policy)|your (?:(?:previous|original|initial|system) )?instructions)\b",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"\bstop being an? (?:ai|assistant|language model|llm|chatbot|bot|helpful assistant)\b",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"\b(?:override|bypass|disable|deactivate|turn off|remove|ignore|circumvent) (?:your|all|any) (?:(?:safety|content|ethical|moderation) )?(?:filters?|guardrails|safeguards|safety (?:measures|protocols|settings)|restrictions|censorship|moderation)\b",
    ),
    (
        Signal::InstructionOverride,
        true,
        r"<\|(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id)\|>|<<sys>>|\[/?inst\]",
    ),
    (
        Signal::InstructionOverride,
        false,
        r"\b(?:ignore|disregard|forget|override|bypass) (?:the |these |those )?(?:instructions?|rules|directions|guidelines|prompts?|context|guardrails|safety filters?)\b",
    ),
    (
        Signal::InstructionOverride,
        false,
        r"\bforget (?:everything|all|what) (?:i|we) (?:said|told you|wrote)\b",
    ),
    (
        Signal::InstructionOverride,
        false,
        r"\b(?:system|admin|administrator|root) override\b|</?system>",
    ),
    // ---- role_play ----------------------------------------------------------------------
    (Signal::RolePlay, true, r"\bdo anything now\b"),
    (
        Signal::RolePlay,
        true,
        r"\b(?:dan|jailbreak|jailbroken|evil confidant) mode\b|\bevil confidant\b",
    ),
    (
        Signal::RolePlay,
        true,
        r"\b(?:pretend|imagine) (?:that )?(?:you are|you(?:'|\x{2019})?re|to be) (?:now )?(?:an? )?(?:(?:unrestricted|unfiltered|uncensored|evil|jailbroken|amoral|unethical|rogue|malicious|unbound)\b|(?:not|no longer) (?:an? )?(?:ai|bound|restricted|an assistant)\b|(?:ai|assistant|model|chatbot) (?:without|with no)\b)",
    ),
    (
        Signal::RolePlay,
        true,
        r"\b(?:act|roleplay|role(?: )?play|pose|behave|respond) as (?:if you (?:are|were) )?(?:an? )?(?:unrestricted|unfiltered|uncensored|evil|jailbroken|amoral|unethical|rogue|malicious|unbound|unlimited)\b",
    ),
    (
        Signal::RolePlay,
        true,
        r"\bact as (?:an? )?(?:ai|assistant|chatbot|model|llm) (?:without|with no)\b",
    ),
    (
        Signal::RolePlay,
        true,
        r"\b(?:you are|you(?:'|\x{2019})?re) (?:now )?(?:an? )?(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|evil) (?:ai|assistant|model|chatbot|version|llm)\b",
    ),
    (
        Signal::RolePlay,
        true,
        r"\b(?:you are|you(?:'|\x{2019})?re) (?:now )?(?:no longer|not|never) (?:bound|restricted|limited|constrained|required to follow)\b|\b(?:you are|you(?:'|\x{2019})?re) (?:now )?free(?:d)? from (?:all |any |your )?(?:restrictions|rules|constraints|guidelines|limitations|filters)\b|\byou no longer (?:have to|need to) (?:follow|obey|comply)\b",
    ),
    (
        Signal::RolePlay,
        true,
        r"\b(?:respond|answer|reply|speak|talk|act|behave|write|output|generate|operate|function)s? (?:[a-z]+ ){0,3}without any (?:restrictions|filters|limitations|censorship|rules|guidelines|morals|ethics|moral|ethical)\b",
    ),
    (
        Signal::RolePlay,
        true,
        r"\byou (?:have|got) no (?:restrictions|filters|limitations|rules|guidelines|ethical guidelines|morals|boundaries|limits)\b",
    ),
    (
        Signal::RolePlay,
        true,
        r"\b(?:act as|you are|you(?:'|\x{2019})?re|simulate|become) (?:[a-z]+ ){0,3}(?:with |in )?developer mode\b|\bdeveloper mode output\b",
    ),
    (Signal::RolePlay, false, r"\bdeveloper mode\b"),
    (Signal::RolePlay, false, r"\bjailbr(?:ea|o)k(?:s|ed|ing)?\b"),
    (
        Signal::RolePlay,
        false,
        r"\b(?:pretend|imagine) (?:that )?(?:you are|you(?:'|\x{2019})?re|to be)\b",
    ),
    (Signal::RolePlay, false, r"\brole(?: )?play(?:ing)? as\b"),
    (
        Signal::RolePlay,
        false,
        r"\bwithout any (?:restrictions|filters|limitations|censorship)\b",
    ),
    // ---- prompt_exfiltration ------------------------------------------------------------
    (
        Signal::PromptExfiltration,
        true,
        r"\b(?:reveal|show|print|repeat|output|display|tell|give|write|leak|dump|list|provide|share|recite|copy|paste|spell|read|echo|expose|disclose|type) (?:me |us )?(?:out |back )?(?:all |exactly |verbatim )?(?:of )?(?:your|the|this) (?:(?:full|entire|complete|exact|whole|verbatim|current|actual) )*(?:system (?:prompt|message|instructions?)|(?:initial|hidden|secret|original|internal|developer|confidential) (?:instructions|prompt|message|rules)|pre(?: )?(?:prompt|instructions)|(?:instructions|prompt|text|message|rules) (?:above|before this|you (?:were|have been) given|given to you))\b",
    ),
    (
        Signal::PromptExfiltration,
        true,
        r"\b(?:what (?:is|are|was|were)|what(?:'|\x{2019})?s|what re) (?:your|the) (?:(?:full|exact|original|initial|current) )*(?:system (?:prompt|message)|initial instructions|hidden instructions|original (?:prompt|instructions)|secret instructions|instructions above|prompt above)\b",
    ),
    (
        Signal::PromptExfiltration,
        true,
        r"\brepeat (?:all |back )?(?:of )?(?:the |your )?(?:text|words|sentences|lines|content|instructions|everything|prompt|message) (?:above|before|prior|preceding)\b",
    ),
    (
        Signal::PromptExfiltration,
        true,
        r"\b(?:everything|all(?: the)? text|the text) (?:above|before) (?:this|the) (?:line|message|point)\b",
    ),
    (
        Signal::PromptExfiltration,
        false,
        r"\b(?:your|the) system prompt\b|\byour (?:initial|original|hidden|secret) (?:instructions|prompt)\b",
    ),
];

/// `(signal, strong, pattern)`, matched on the original text (the persona name `DAN` is only
/// meaningful in uppercase; `Dan` is a name).
pub(super) const ORIGINAL_PHRASES: &[(Signal, bool, &str)] = &[
    (
        Signal::RolePlay,
        true,
        r"(?-u:\b)(?i:you\s+are|you're|act\s+as|become|play|as|called|named|enable|activate)\s+(?i:now\s+)?DAN(?-u:\b)",
    ),
    (Signal::RolePlay, false, r"(?-u:\b)DAN(?-u:\b)"),
];

/// ANSI escape sequences: CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ST`, two-byte `ESC x` (x in 0x40–0x7E),
/// C1 CSI U+009B, or a bare ESC.
pub(super) const ANSI: &str = r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]{0,4096}(?:\x07|\x1b\\)|[@-~])?|\x{9b}[0-?]*[ -/]*[@-~]";

/// A negation ending right before a phrase match downgrades it to weak: "the assistant must
/// never reveal the system prompt", "do not ignore previous instructions". Only an optional
/// `ever`/`ever again` may sit in between, so "never mind, ignore previous instructions" stays
/// strong.
pub(super) const NEGATION: &str = r"(?-u:\b)(?:never|not|dont|don't|don\x{2019}t|cannot|can't|can\x{2019}t|won't|won\x{2019}t|shouldn't|shouldn\x{2019}t|mustn't|mustn\x{2019}t)\s+(?:ever\s+)?$";

/// How far back (bytes of folded text) to look for a negation.
pub(super) const NEGATION_WINDOW: usize = 40;

/// Regex compiled-size limit (the Unicode separator class repeats in every pattern).
pub(super) const SIZE_LIMIT: usize = 64 << 20;

/// Rewrites a table pattern into regex syntax: each space becomes [`SEP`], each `\b` an ASCII
/// word boundary.
pub(super) fn expand(pattern: &str) -> String {
    pattern.replace(' ', SEP).replace(r"\b", r"(?-u:\b)")
}
