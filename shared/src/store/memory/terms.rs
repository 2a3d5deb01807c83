//! The one tokenizer of memory search: every backend indexes and searches
//! the terms [`words`] gives, so a query finds the same entries on Redis,
//! SQL and process memory.
//!
//! # Rules
//!
//! 1. The text is normalised to NFKC (`Ｐｙｔｈｏｎ` is `Python`, a decomposed
//!    `é` is the composed one, half-width katakana are full-width).
//! 2. It is cut into words by Unicode's word boundaries (UAX #29): a run of
//!    letters and digits of a script written with spaces (Latin, Cyrillic,
//!    Greek, Arabic, digits, …) is one word, lowercased by Unicode's rules,
//!    kept when it is at most [`MAX_WORD_BYTES`] bytes.
//! 3. Scripts written without spaces between words (Han, Hiragana,
//!    Katakana, Thai, Lao, Khmer, Myanmar) and Hangul (whose space-separated
//!    words carry particles: `파이썬을`) are indexed as the character
//!    bigrams of each run of them: `私の名前は太郎です` gives `私の`, `の名`,
//!    `名前`, `前は`, `は太`, `太郎`, `郎で`, `です`, so the query `太郎` (one
//!    bigram) finds it. A run of one character is that character. A run ends
//!    at any other character (`私はPythonで` is the runs `私は` and `で` and
//!    the word `python`).
//! 4. Terms are distinct, in order of appearance, at most `max` of them:
//!    the work is linear in the text and the output bounded, whatever the
//!    script (no dictionary, nothing loaded at run time).
//!
//! A query is cut the same way and an entry matches when it shares at least
//! one term with it, so a longer CJK query matches entries that share any
//! of its bigrams.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

use super::MAX_WORD_BYTES;

/// Whether `c` belongs to a script indexed by character bigrams (rule 3 of
/// the module documentation): the Unicode blocks of Han (with `々 〆 〇`),
/// Hiragana, Katakana, Hangul, Thai, Lao, Khmer and Myanmar, less their
/// punctuation (the katakana middle dot, Thai and Khmer signs that end a
/// sentence).
pub fn is_unspaced(c: char) -> bool {
    let in_blocks = matches!(c,
        '\u{0E00}'..='\u{0EFF}'         // Thai, Lao
        | '\u{1000}'..='\u{109F}'       // Myanmar
        | '\u{1100}'..='\u{11FF}'       // Hangul Jamo
        | '\u{1780}'..='\u{17FF}'       // Khmer
        | '\u{3005}'..='\u{3007}'       // 々 〆 〇
        | '\u{3040}'..='\u{30FF}'       // Hiragana, Katakana
        | '\u{3130}'..='\u{318F}'       // Hangul Compatibility Jamo
        | '\u{31F0}'..='\u{31FF}'       // Katakana Phonetic Extensions
        | '\u{3400}'..='\u{4DBF}'       // CJK Extension A
        | '\u{4E00}'..='\u{9FFF}'       // CJK Unified Ideographs
        | '\u{A960}'..='\u{A97F}'       // Hangul Jamo Extended-A
        | '\u{AC00}'..='\u{D7FF}'       // Hangul Syllables, Jamo Extended-B
        | '\u{F900}'..='\u{FAFF}'       // CJK Compatibility Ideographs
        | '\u{FF66}'..='\u{FF9F}'       // Half-width Katakana
        | '\u{20000}'..='\u{323AF}'     // CJK Extensions B to H, Compatibility Supplement
    );
    in_blocks
        && !matches!(
            c,
            '\u{30FB}' | '\u{0E4F}' | '\u{0E5A}' | '\u{0E5B}' | '\u{17D4}'..='\u{17DA}'
        )
}

/// The distinct terms of `text` by the rules of the module documentation
/// (words, lowercased, and character bigrams of unspaced scripts), at most
/// `max`, in order of appearance.
pub fn words(text: &str, max: usize) -> Vec<String> {
    let mut terms = Terms {
        seen: HashSet::new(),
        out: Vec::new(),
        max,
        previous: None,
        run: 0,
    };
    if max == 0 {
        return terms.out;
    }
    let normalized: String = text.nfkc().collect();
    for segment in normalized.split_word_bounds() {
        let mut chars = segment.chars();
        let Some(first) = chars.next() else { continue };
        if is_unspaced(first) {
            for c in segment.chars().filter(|c| is_unspaced(*c)) {
                terms.extend_run(c);
            }
        } else {
            terms.end_run();
            if segment.chars().any(char::is_alphanumeric) {
                terms.push(segment.to_lowercase());
            }
        }
        if terms.full() {
            return terms.out;
        }
    }
    terms.end_run();
    terms.out
}

/// The terms found so far and the run of unspaced characters being read.
struct Terms {
    seen: HashSet<String>,
    out: Vec<String>,
    max: usize,
    /// The last character of the current run.
    previous: Option<char>,
    /// How many characters the current run has.
    run: usize,
}

impl Terms {
    fn full(&self) -> bool {
        self.out.len() >= self.max
    }

    fn push(&mut self, term: String) {
        if self.full() || term.len() > MAX_WORD_BYTES || self.seen.contains(&term) {
            return;
        }
        self.seen.insert(term.clone());
        self.out.push(term);
    }

    fn extend_run(&mut self, c: char) {
        if let Some(p) = self.previous {
            self.push([p, c].iter().collect());
        }
        self.previous = Some(c);
        self.run += 1;
    }

    fn end_run(&mut self) {
        if self.run == 1
            && let Some(p) = self.previous
        {
            self.push(p.to_string());
        }
        self.previous = None;
        self.run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_scripts_are_words_lowercased_distinct_and_bounded() {
        assert_eq!(
            words("Tours em PARIS, tours: São-Paulo!", 10),
            vec!["tours", "em", "paris", "são", "paulo"]
        );
        assert_eq!(words("a b c", 2), vec!["a", "b"]);
        assert!(words(&"x".repeat(MAX_WORD_BYTES + 1), 5).is_empty());
        assert!(words(":*{}", 5).is_empty());
        assert_eq!(words("ΟΔΟΣ Straße", 5), vec!["οδος", "straße"]);
    }

    #[test]
    fn text_is_compared_in_nfkc() {
        assert_eq!(words("Ｐｙｔｈｏｎ", 5), vec!["python"]);
        assert_eq!(words("cafe\u{301}", 5), words("caf\u{e9}", 5));
        assert_eq!(words("ｶﾀｶﾅ", 5), words("カタカナ", 5));
    }

    #[test]
    fn japanese_is_indexed_by_bigrams() {
        let terms = words("私の名前は太郎です", 50);
        assert_eq!(
            terms,
            vec![
                "私の", "の名", "名前", "前は", "は太", "太郎", "郎で", "です"
            ]
        );
        assert_eq!(words("太郎", 5), vec!["太郎"]);
        assert_eq!(words("猫", 5), vec!["猫"]);
    }

    #[test]
    fn latin_inside_cjk_is_a_word_of_its_own() {
        let terms = words("私はPythonでADKを使っています", 50);
        assert!(terms.contains(&"python".to_owned()), "{terms:?}");
        assert!(terms.contains(&"adk".to_owned()), "{terms:?}");
        assert!(terms.contains(&"私は".to_owned()), "{terms:?}");
        assert!(terms.contains(&"使っ".to_owned()), "{terms:?}");
        assert!(!terms.iter().any(|t| t.contains("はp")), "{terms:?}");
    }

    #[test]
    fn chinese_thai_and_korean_runs_give_bigrams() {
        assert!(words("我喜欢学习中文", 50).contains(&"中文".to_owned()));
        let thai = words("ผมชอบกินข้าวผัด", 50);
        assert!(thai.contains(&"ผั".to_owned()) || thai.contains(&"ผ".to_owned()));
        let query = words("ข้าว", 50);
        assert!(
            query.iter().all(|q| thai.contains(q)),
            "{query:?} in {thai:?}"
        );
        let korean = words("파이썬을 배우고 있어요", 50);
        assert!(words("파이썬", 5).iter().all(|q| korean.contains(q)));
        assert!(
            !words("카타나 ・ 「テスト」。", 50)
                .iter()
                .any(|t| t.contains('・'))
        );
    }

    #[test]
    fn the_terms_of_a_long_text_are_bounded() {
        let text = "漢字かなカナ".repeat(10_000);
        let terms = words(&text, 200);
        assert!(terms.len() <= 200);
        let many: String = (0x4E00u32..0x4E00 + 5_000)
            .filter_map(char::from_u32)
            .collect();
        assert_eq!(words(&many, 200).len(), 200);
        assert!(words("漢", 0).is_empty());
    }
}
