//! The writing system a prompt is mostly written in: a cheap, dependency-free stand-in for
//! language identification that still tells a shift from English to Russian, Arabic or
//! Chinese traffic.

/// Characters looked at: enough to tell the script of any prompt, bounded for long ones.
const SAMPLE_CHARS: usize = 2048;

/// Every value [`dominant`] answers, in a fixed order (pages and reports list them so).
pub const SCRIPTS: [&str; 12] = [
    "latin",
    "cyrillic",
    "greek",
    "arabic",
    "hebrew",
    "devanagari",
    "thai",
    "hangul",
    "kana",
    "han",
    "other",
    "none",
];

/// The script of one letter; `None` for anything that is not a letter.
fn of(c: char) -> Option<&'static str> {
    if c.is_ascii_alphabetic() {
        return Some("latin");
    }
    if c.is_ascii() || !c.is_alphabetic() {
        return None;
    }
    Some(match c as u32 {
        0x00C0..=0x024F | 0x1E00..=0x1EFF => "latin",
        0x0370..=0x03FF | 0x1F00..=0x1FFF => "greek",
        0x0400..=0x052F => "cyrillic",
        0x0590..=0x05FF => "hebrew",
        0x0600..=0x06FF | 0x0750..=0x077F => "arabic",
        0x0900..=0x097F => "devanagari",
        0x0E00..=0x0E7F => "thai",
        0x1100..=0x11FF | 0xAC00..=0xD7AF => "hangul",
        0x3040..=0x30FF => "kana",
        0x3400..=0x4DBF | 0x4E00..=0x9FFF => "han",
        _ => "other",
    })
}

/// The script of most letters among the first characters of `text`; `none` without letters.
pub fn dominant<'a>(texts: impl IntoIterator<Item = &'a str>) -> &'static str {
    let mut counts = [0u32; SCRIPTS.len()];
    let chars = texts.into_iter().flat_map(str::chars).take(SAMPLE_CHARS);
    for s in chars.filter_map(of) {
        let i = SCRIPTS.iter().position(|x| *x == s).expect("listed");
        counts[i] += 1;
    }
    let (i, n) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
        .expect("non-empty");
    if *n == 0 {
        "none"
    } else {
        SCRIPTS[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scripts_of_common_languages() {
        let cases = [
            ("Failed SSH login for root from 10.0.0.5", "latin"),
            ("Überprüfen Sie die Anmeldung", "latin"),
            ("Неудачная попытка входа пользователя root", "cyrillic"),
            ("محاولة تسجيل دخول فاشلة", "arabic"),
            ("用户登录失败，请检查日志", "han"),
            ("ログインに失敗しました", "kana"),
            ("로그인 실패", "hangul"),
            ("Αποτυχία σύνδεσης", "greek"),
            ("12345 !!! ---", "none"),
            ("", "none"),
        ];
        for (text, want) in cases {
            assert_eq!(dominant([text]), want, "{text}");
        }
        // A few Latin words (an IP, a user name) in a Russian alert keep it Russian.
        assert_eq!(
            dominant(["Пользователь admin не смог войти с адреса host-a"]),
            "cyrillic"
        );
        assert_eq!(dominant(["Hello ", "мир мир мир"]), "cyrillic");
    }

    proptest! {
        #[test]
        fn any_text_has_a_listed_script(s in any::<String>()) {
            prop_assert!(SCRIPTS.contains(&dominant([s.as_str()])));
        }
    }
}
