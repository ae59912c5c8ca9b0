//! Knowing who the patrons are (angket): a questionnaire, filled in anonymously on the
//! search pages, entered from paper forms by the librarian, or read from a spreadsheet's
//! CSV (a Google Forms export); its results as counts, and the interests set beside the
//! collection's strength in each division. Kept on this node.
//!
//! sled tree `survey`:
//!
//! ```text
//! d                          -> the questionnaire (JSON)
//! a | survey id | seq (u64)  -> one answer (JSON): where from, when, the choices
//! c | day (u64)              -> answers taken from the search pages that day
//! ```

use jalin_protocol::collection::{OverlapReport, DIVISIONS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Questions a questionnaire has, at most.
pub const QUESTIONS_MAX: usize = 30;
/// Options a question has, at most.
pub const OPTIONS_MAX: usize = 30;
/// Longest text (a question, an option, a free answer), in bytes.
pub const TEXT_MAX: usize = 1_000;
/// Answers taken from the search pages per day, at most.
pub const OPAC_ANSWERS_PER_DAY_MAX: u64 = 500;
/// Rows read from one CSV, at most.
pub const CSV_ROWS_MAX: usize = 20_000;
/// Largest CSV read, in bytes.
pub const CSV_BYTES_MAX: usize = 8 * 1024 * 1024;

const DAY_MS: u64 = 86_400_000;

/// How a question is answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One of the options.
    One,
    /// Any of the options.
    Many,
    /// Free text (kept, never counted or shared).
    Text,
}

/// A question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Its id (`pekerjaan`), also a CSV column's name.
    pub id: String,
    /// As asked.
    pub text: String,
    /// How it is answered.
    pub kind: Kind,
    /// The options (for `one` and `many`).
    #[serde(default)]
    pub options: Vec<String>,
    /// For interests: option `i` is division `divisions[i]` (`"600"`), set beside the
    /// collection.
    #[serde(default)]
    pub divisions: Vec<String>,
}

/// A questionnaire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    /// Its id (answers belong to it).
    pub id: String,
    /// Its title.
    pub title: String,
    /// The questions.
    pub questions: Vec<Question>,
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A patron, on the search pages.
    Opac,
    /// A paper form, entered by the librarian.
    Paper,
    /// A row of a CSV.
    Csv,
}

/// One answer: per question, the options chosen (their indexes) or the text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Where from.
    pub source: Source,
    /// When taken (ms since 1970).
    pub at_ms: u64,
    /// Question id -> chosen options.
    pub chosen: BTreeMap<String, Vec<usize>>,
    /// Question id -> free text.
    pub text: BTreeMap<String, String>,
}

/// What goes wrong.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    /// No questionnaire yet.
    #[error("there is no questionnaire yet: make one with `jalin survey create`")]
    NoSurvey,
    /// An answer or a definition out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// Too many answers from the search pages today.
    #[error("{0} answers came from the search pages today, the most taken in a day")]
    TooManyToday(u64),
    /// A CSV that cannot be read.
    #[error("the CSV cannot be read: {0}")]
    BadCsv(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// Stored data that does not read back.
    #[error("stored survey data is damaged: {0}")]
    Damaged(String),
}

impl SurveyError {
    /// What kind of failure this is, as a stable name.
    pub fn code(&self) -> &'static str {
        match self {
            SurveyError::NoSurvey => "survey_none",
            SurveyError::Invalid(_) => "survey_invalid",
            SurveyError::TooManyToday(_) => "survey_too_many_today",
            SurveyError::BadCsv(_) => "survey_bad_csv",
            SurveyError::Storage(_) | SurveyError::Damaged(_) => "storage",
        }
    }
}

/// The ready questionnaire, in Indonesian: occupation, age, gender, interests (the
/// collection's divisions), and a free suggestion.
pub fn template(id: &str) -> Survey {
    let one = |id: &str, text: &str, options: &[&str]| Question {
        id: id.into(),
        text: text.into(),
        kind: Kind::One,
        options: options.iter().map(|o| o.to_string()).collect(),
        divisions: Vec::new(),
    };
    Survey {
        id: id.into(),
        title: "Angket pemustaka".into(),
        questions: vec![
            one(
                "pekerjaan",
                "Apa pekerjaan Anda?",
                &[
                    "Pelajar atau mahasiswa",
                    "Guru atau dosen",
                    "Petani, peternak atau nelayan",
                    "Pedagang atau wiraswasta",
                    "Pegawai atau karyawan",
                    "Ibu atau bapak rumah tangga",
                    "Tidak bekerja",
                    "Lainnya",
                ],
            ),
            one(
                "usia",
                "Berapa usia Anda?",
                &[
                    "Di bawah 13 tahun",
                    "13-18 tahun",
                    "19-25 tahun",
                    "26-40 tahun",
                    "41-60 tahun",
                    "Di atas 60 tahun",
                ],
            ),
            one(
                "jenis_kelamin",
                "Jenis kelamin",
                &["Perempuan", "Laki-laki", "Tidak ingin menyebutkan"],
            ),
            Question {
                id: "minat".into(),
                text: "Bacaan tentang apa yang Anda minati? (boleh lebih dari satu)".into(),
                kind: Kind::Many,
                options: DIVISIONS.iter().map(|(_, id, _)| id.to_string()).collect(),
                divisions: DIVISIONS.iter().map(|(c, _, _)| c.to_string()).collect(),
            },
            Question {
                id: "saran".into(),
                text: "Buku atau layanan apa yang Anda harapkan dari perpustakaan?".into(),
                kind: Kind::Text,
                options: Vec::new(),
                divisions: Vec::new(),
            },
        ],
    }
}

fn bounded(text: &str, what: &str) -> Result<String, SurveyError> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > TEXT_MAX || text.chars().any(char::is_control) {
        return Err(SurveyError::Invalid(format!(
            "{what} is at most {TEXT_MAX} bytes, no control characters"
        )));
    }
    Ok(text)
}

impl Survey {
    /// Checks a questionnaire's bounds.
    pub fn check(&self) -> Result<(), SurveyError> {
        if self.questions.is_empty() || self.questions.len() > QUESTIONS_MAX {
            return Err(SurveyError::Invalid(format!(
                "a questionnaire has 1 to {QUESTIONS_MAX} questions"
            )));
        }
        let mut ids = std::collections::BTreeSet::new();
        for q in &self.questions {
            if q.id.is_empty()
                || q.id.len() > 64
                || !q.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || !ids.insert(&q.id)
            {
                return Err(SurveyError::Invalid(format!(
                    "question ids are distinct, 1 to 64 letters, digits or '_': {:?} is not",
                    q.id
                )));
            }
            if bounded(&q.text, "a question")?.is_empty() {
                return Err(SurveyError::Invalid(format!("question {}: no text", q.id)));
            }
            let choice = q.kind != Kind::Text;
            if choice && (q.options.is_empty() || q.options.len() > OPTIONS_MAX) {
                return Err(SurveyError::Invalid(format!(
                    "question {}: 1 to {OPTIONS_MAX} options",
                    q.id
                )));
            }
            for o in &q.options {
                if bounded(o, "an option")?.is_empty() {
                    return Err(SurveyError::Invalid(format!(
                        "question {}: an empty option",
                        q.id
                    )));
                }
            }
            if !q.divisions.is_empty() && q.divisions.len() != q.options.len() {
                return Err(SurveyError::Invalid(format!(
                    "question {}: one division per option",
                    q.id
                )));
            }
        }
        Ok(())
    }

    /// Reads an answer given as text per question id (a form's fields or a CSV row's
    /// cells): a choice by its option's text (or its number from 1), several separated by
    /// `;` or `,`. Unknown choices are refused, saying which.
    pub fn answer(
        &self,
        fields: &BTreeMap<String, Vec<String>>,
        source: Source,
        at_ms: u64,
    ) -> Result<Answer, SurveyError> {
        let mut answer = Answer {
            source,
            at_ms,
            chosen: BTreeMap::new(),
            text: BTreeMap::new(),
        };
        for q in &self.questions {
            let given: Vec<&str> = fields
                .get(&q.id)
                .into_iter()
                .flatten()
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .collect();
            if given.is_empty() {
                continue;
            }
            if q.kind == Kind::Text {
                answer
                    .text
                    .insert(q.id.clone(), bounded(&given.join(" "), "an answer")?);
                continue;
            }
            let mut chosen = Vec::new();
            for value in given {
                let parts = if q.kind == Kind::Many {
                    split_many(value, &q.options)
                } else {
                    vec![value.to_string()]
                };
                for part in &parts {
                    let part = part.as_str();
                    let index = q
                        .options
                        .iter()
                        .position(|o| o.eq_ignore_ascii_case(part))
                        .or_else(|| {
                            part.parse::<usize>()
                                .ok()
                                .filter(|n| (1..=q.options.len()).contains(n))
                                .map(|n| n - 1)
                        })
                        .ok_or_else(|| {
                            SurveyError::Invalid(format!(
                                "question {}: {:?} is none of its options",
                                q.id,
                                part.chars().take(60).collect::<String>()
                            ))
                        })?;
                    if !chosen.contains(&index) {
                        chosen.push(index);
                    }
                }
            }
            if q.kind == Kind::One && chosen.len() > 1 {
                return Err(SurveyError::Invalid(format!(
                    "question {}: one option only",
                    q.id
                )));
            }
            chosen.sort_unstable();
            answer.chosen.insert(q.id.clone(), chosen);
        }
        if answer.chosen.is_empty() && answer.text.is_empty() {
            return Err(SurveyError::Invalid("the answer is empty".into()));
        }
        Ok(answer)
    }
}

/// A "many" answer's parts: the options named in it (a form's checkboxes come as
/// `A, B` and an option may hold commas itself), then what is left split on `;` and `,`
/// (option numbers, or unknown words the caller refuses).
fn split_many(value: &str, options: &[String]) -> Vec<String> {
    let mut rest = value.to_lowercase();
    let mut parts = Vec::new();
    let mut by_length: Vec<&String> = options.iter().collect();
    by_length.sort_by_key(|o| std::cmp::Reverse(o.len()));
    for option in by_length {
        let lower = option.to_lowercase();
        if !lower.is_empty() && rest.contains(&lower) {
            rest = rest.replacen(&lower, ";", 1);
            parts.push(option.clone());
        }
    }
    parts.extend(
        rest.split([';', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string),
    );
    parts
}

/// An option's count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptionCount {
    /// The option.
    pub option: String,
    /// Answers choosing it.
    pub count: u64,
    /// Of the answers to the question, in percent.
    pub percent: f64,
}

/// A question's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestionResult {
    /// The question's id.
    pub id: String,
    /// As asked.
    pub text: String,
    /// Answers that answered it.
    pub answered: u64,
    /// Per option, in the options' order (empty for free text).
    pub options: Vec<OptionCount>,
    /// The free answers (for free text), newest first, at most 200.
    pub texts: Vec<String>,
}

/// An interest beside the collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterestBeside {
    /// The division.
    pub division: String,
    /// As the questionnaire names it.
    pub option: String,
    /// Of the answers naming interests, the percent naming this one.
    pub asked_percent: f64,
    /// This library's titles in the division, as a percent of its titles.
    pub held_percent: f64,
    /// Partners' titles in the division, as a percent of the partners' titles (each
    /// partner's holdings counted).
    pub partners_percent: f64,
}

/// The results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SurveyReport {
    /// The questionnaire.
    pub survey: Survey,
    /// Answers in all.
    pub answers: u64,
    /// By where from.
    pub by_source: BTreeMap<String, u64>,
    /// Per question.
    pub questions: Vec<QuestionResult>,
    /// Interests beside the collection (when a question maps options to divisions).
    pub interests: Vec<InterestBeside>,
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

/// The questionnaire and its answers, on this node.
pub struct Surveys {
    tree: crate::durable::Tree,
    seq: AtomicU64,
}

impl Surveys {
    /// Opens the survey tree of `db`.
    pub fn open(db: &crate::durable::Db) -> Result<Surveys, sled::Error> {
        let tree = db.open_tree("survey")?;
        let last = tree
            .scan_prefix([b'a'])
            .filter_map(Result::ok)
            .filter_map(|(k, _)| {
                k.len()
                    .checked_sub(8)
                    .and_then(|at| <[u8; 8]>::try_from(&k[at..]).ok())
            })
            .map(u64::from_be_bytes)
            .max()
            .map_or(0, |n| n + 1);
        Ok(Surveys {
            tree,
            seq: AtomicU64::new(last),
        })
    }

    /// The questionnaire, if there is one.
    pub fn current(&self) -> Result<Option<Survey>, SurveyError> {
        self.tree
            .get(b"d")?
            .map(|v| serde_json::from_slice(&v).map_err(|e| SurveyError::Damaged(e.to_string())))
            .transpose()
    }

    /// Makes `survey` the questionnaire (answers to an earlier one are kept under its id).
    pub fn create(&self, survey: &Survey) -> Result<(), SurveyError> {
        survey.check()?;
        let json = serde_json::to_vec(survey).map_err(|e| SurveyError::Damaged(e.to_string()))?;
        self.tree.insert(b"d", json)?;
        self.tree.flush()?;
        Ok(())
    }

    fn answer_key(survey: &str, seq: u64) -> Vec<u8> {
        let mut key = vec![b'a'];
        key.extend_from_slice(survey.as_bytes());
        key.push(0);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    /// Keeps an answer to the current questionnaire; from the search pages, at most
    /// [`OPAC_ANSWERS_PER_DAY_MAX`] a day.
    pub fn take(&self, answer: &Answer) -> Result<(), SurveyError> {
        let survey = self.current()?.ok_or(SurveyError::NoSurvey)?;
        if answer.source == Source::Opac {
            let mut counter = vec![b'c'];
            counter.extend_from_slice(&(answer.at_ms / DAY_MS).to_be_bytes());
            let today = self
                .tree
                .update_and_fetch(&counter, |old| {
                    let n = old
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map_or(0, u64::from_be_bytes);
                    Some(n.saturating_add(1).to_be_bytes().to_vec())
                })?
                .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
                .map_or(0, u64::from_be_bytes);
            if today > OPAC_ANSWERS_PER_DAY_MAX {
                return Err(SurveyError::TooManyToday(OPAC_ANSWERS_PER_DAY_MAX));
            }
        }
        let json = serde_json::to_vec(answer).map_err(|e| SurveyError::Damaged(e.to_string()))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.tree.insert(Self::answer_key(&survey.id, seq), json)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Reads a CSV (a header row naming the questions by id or by their text, as Google
    /// Forms exports them; a timestamp column and others are ignored) into answers: all
    /// of them, or none and the first row that is wrong.
    pub fn read_csv(&self, bytes: &[u8], at_ms: u64) -> Result<Vec<Answer>, SurveyError> {
        let survey = self.current()?.ok_or(SurveyError::NoSurvey)?;
        if bytes.len() > CSV_BYTES_MAX {
            return Err(SurveyError::BadCsv(format!(
                "{} bytes; at most {CSV_BYTES_MAX} are read",
                bytes.len()
            )));
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let headers = reader
            .headers()
            .map_err(|e| SurveyError::BadCsv(e.to_string()))?
            .clone();
        let fold = |t: &str| t.trim().to_lowercase();
        let columns: Vec<Option<&Question>> = headers
            .iter()
            .map(|h| {
                survey
                    .questions
                    .iter()
                    .find(|q| fold(&q.id) == fold(h) || fold(&q.text) == fold(h))
            })
            .collect();
        if columns.iter().all(Option::is_none) {
            return Err(SurveyError::BadCsv(
                "no column is named after a question (by its id or its text)".into(),
            ));
        }
        let mut out = Vec::new();
        for (n, record) in reader.records().enumerate() {
            let line = n + 2;
            if out.len() == CSV_ROWS_MAX {
                return Err(SurveyError::BadCsv(format!("past {CSV_ROWS_MAX} rows")));
            }
            let record = record.map_err(|e| SurveyError::BadCsv(format!("row {line}: {e}")))?;
            let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (cell, column) in record.iter().zip(&columns) {
                if let Some(q) = column {
                    fields
                        .entry(q.id.clone())
                        .or_default()
                        .push(cell.to_string());
                }
            }
            if fields.values().flatten().all(|v| v.trim().is_empty()) {
                continue;
            }
            let answer = survey
                .answer(&fields, Source::Csv, at_ms)
                .map_err(|e| SurveyError::BadCsv(format!("row {line}: {e}")))?;
            out.push(answer);
        }
        Ok(out)
    }

    /// The current questionnaire's totals that may leave the node: per choice question,
    /// each option chosen by at least three answers (free text never).
    pub fn shareable(
        &self,
    ) -> Result<Vec<jalin_protocol::consortium::needs::SharedTotal>, SurveyError> {
        use jalin_protocol::consortium::needs::{SharedTotal, QUERIES_MAX, SESSIONS_MIN};
        let Some(survey) = self.current()? else {
            return Ok(Vec::new());
        };
        let answers = self.answers(&survey.id)?;
        let mut out = Vec::new();
        for q in survey.questions.iter().filter(|q| q.kind != Kind::Text) {
            let mut counts = vec![0u32; q.options.len()];
            for a in &answers {
                for &i in a.chosen.get(&q.id).into_iter().flatten() {
                    if let Some(c) = counts.get_mut(i) {
                        *c = c.saturating_add(1);
                    }
                }
            }
            for (option, &count) in q.options.iter().zip(&counts) {
                if count >= SESSIONS_MIN {
                    out.push(SharedTotal {
                        question: q.text.clone(),
                        option: option.clone(),
                        count,
                    });
                }
            }
        }
        out.truncate(QUERIES_MAX);
        Ok(out)
    }

    /// Every answer to questionnaire `id`, oldest first.
    pub fn answers(&self, id: &str) -> Result<Vec<Answer>, SurveyError> {
        let mut prefix = vec![b'a'];
        prefix.extend_from_slice(id.as_bytes());
        prefix.push(0);
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (_, v) = item?;
                serde_json::from_slice(&v).map_err(|e| SurveyError::Damaged(e.to_string()))
            })
            .collect()
    }

    /// The results of the current questionnaire, the interests beside the collection
    /// (`overlap`: the union's figures; `own`: this library's key, hex).
    pub fn report(&self, overlap: &OverlapReport, own: &str) -> Result<SurveyReport, SurveyError> {
        let survey = self.current()?.ok_or(SurveyError::NoSurvey)?;
        let answers = self.answers(&survey.id)?;
        let mut by_source: BTreeMap<String, u64> = BTreeMap::new();
        for a in &answers {
            let name = match a.source {
                Source::Opac => "opac",
                Source::Paper => "paper",
                Source::Csv => "csv",
            };
            *by_source.entry(name.into()).or_default() += 1;
        }
        let mut questions = Vec::new();
        let mut interests = Vec::new();
        for q in &survey.questions {
            if q.kind == Kind::Text {
                let texts: Vec<String> = answers
                    .iter()
                    .rev()
                    .filter_map(|a| a.text.get(&q.id).cloned())
                    .collect();
                questions.push(QuestionResult {
                    id: q.id.clone(),
                    text: q.text.clone(),
                    answered: texts.len() as u64,
                    options: Vec::new(),
                    texts: texts.into_iter().take(200).collect(),
                });
                continue;
            }
            let mut counts = vec![0u64; q.options.len()];
            let mut answered = 0;
            for a in &answers {
                if let Some(chosen) = a.chosen.get(&q.id) {
                    answered += 1;
                    for &i in chosen {
                        if let Some(c) = counts.get_mut(i) {
                            *c += 1;
                        }
                    }
                }
            }
            let options: Vec<OptionCount> = q
                .options
                .iter()
                .zip(&counts)
                .map(|(o, &c)| OptionCount {
                    option: o.clone(),
                    count: c,
                    percent: percent(c, answered),
                })
                .collect();
            if !q.divisions.is_empty() {
                let own_figures = overlap.libraries.iter().find(|l| l.library == own);
                let own_total = own_figures.map_or(0, |l| l.titles.total());
                let partners: Vec<_> = overlap
                    .libraries
                    .iter()
                    .filter(|l| l.library != own)
                    .collect();
                let partners_total: u64 = partners.iter().map(|l| l.titles.total()).sum();
                for (option, division) in options.iter().zip(&q.divisions) {
                    let in_division = |l: &jalin_protocol::collection::LibraryOverlap| {
                        l.by_division.get(division).map_or(0, |s| s.total())
                    };
                    interests.push(InterestBeside {
                        division: division.clone(),
                        option: option.option.clone(),
                        asked_percent: option.percent,
                        held_percent: percent(own_figures.map_or(0, in_division), own_total),
                        partners_percent: percent(
                            partners.iter().map(|l| in_division(l)).sum(),
                            partners_total,
                        ),
                    });
                }
            }
            questions.push(QuestionResult {
                id: q.id.clone(),
                text: q.text.clone(),
                answered,
                options,
                texts: Vec::new(),
            });
        }
        Ok(SurveyReport {
            answers: answers.len() as u64,
            by_source,
            questions,
            interests,
            survey,
        })
    }
}

/// Longest questionnaire definition read, in bytes.
pub const DEFINITION_BYTES_MAX: usize = 64 * 1024;

/// Reads a questionnaire written as TOML (see [`SurveyRequest::Create`]), checked.
pub fn read_definition(text: &str, id: &str) -> Result<Survey, SurveyError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Definition {
        title: String,
        questions: Vec<Question>,
    }
    if text.len() > DEFINITION_BYTES_MAX {
        return Err(SurveyError::Invalid(format!(
            "a questionnaire is at most {DEFINITION_BYTES_MAX} bytes"
        )));
    }
    let definition: Definition = toml::from_str(text)
        .map_err(|e| SurveyError::Invalid(format!("the questionnaire: {e}")))?;
    let mut questions = definition.questions;
    for q in &mut questions {
        q.text = bounded(&q.text, "a question")?;
        for o in &mut q.options {
            *o = bounded(o, "an option")?;
        }
    }
    let survey = Survey {
        id: id.to_string(),
        title: bounded(&definition.title, "a title")?,
        questions,
    };
    survey.check()?;
    for q in &survey.questions {
        if q.divisions
            .iter()
            .any(|d| !DIVISIONS.iter().any(|(c, _, _)| c == d))
        {
            return Err(SurveyError::Invalid(format!(
                "question {}: divisions are 000, 100, ... 900",
                q.id
            )));
        }
    }
    Ok(survey)
}

/// The results as CSV: each option's count and share, then each interest beside the
/// collection.
pub fn report_csv(report: &SurveyReport) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut rows: Vec<Vec<String>> = vec![vec![
        "question".into(),
        "option".into(),
        "count".into(),
        "percent".into(),
        "collection_percent".into(),
        "partners_percent".into(),
    ]];
    for q in &report.questions {
        for o in &q.options {
            rows.push(vec![
                q.id.clone(),
                o.option.clone(),
                o.count.to_string(),
                o.percent.to_string(),
                String::new(),
                String::new(),
            ]);
        }
    }
    for i in &report.interests {
        rows.push(vec![
            "interest".into(),
            format!("{} {}", i.division, i.option),
            String::new(),
            i.asked_percent.to_string(),
            i.held_percent.to_string(),
            i.partners_percent.to_string(),
        ]);
    }
    for row in rows {
        let _ = out.write_record(&row);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A request about the questionnaire, from the CLI, the API or the pages.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SurveyRequest {
    /// Make a questionnaire the current one (answers to an earlier one are kept apart):
    /// the ready one, or one written as TOML (`title`, then `[[questions]]` with `id`,
    /// `text`, `kind` = "one" | "many" | "text", `options`, and for interests `divisions`).
    Create {
        /// The questionnaire as TOML; none: the ready one.
        #[serde(default)]
        definition: Option<String>,
    },
    /// The results.
    Report,
}

/// What a survey request answers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SurveyAnswer {
    /// For people.
    pub message: String,
    /// The results (for `report`), none when there is no questionnaire.
    pub report: Option<SurveyReport>,
}

/// Runs a survey request (blocking: the report reads every catalog for the collection's
/// figures).
pub fn execute(
    library: &crate::library::Library,
    request: SurveyRequest,
) -> Result<SurveyAnswer, crate::library::LibraryError> {
    let surveys = library.surveys();
    match request {
        SurveyRequest::Create { definition } => {
            let id = format!("angket-{}", library.now_ms());
            let survey = match definition {
                None => template(&id),
                Some(text) => read_definition(&text, &id)?,
            };
            surveys.create(&survey)?;
            Ok(SurveyAnswer {
                message: format!(
                    "questionnaire {id} made ({} questions)",
                    survey.questions.len()
                ),
                report: None,
            })
        }
        SurveyRequest::Report => {
            if surveys.current()?.is_none() {
                return Ok(SurveyAnswer {
                    message: "there is no questionnaire yet".into(),
                    report: None,
                });
            }
            let overlap = library.collection_overlap()?;
            let report = surveys.report(&overlap, &library.id().to_hex())?;
            Ok(SurveyAnswer {
                message: format!("{} answers", report.answers),
                report: Some(report),
            })
        }
    }
}

/// Takes every answer of a CSV, or none (and why). Returns how many.
pub fn import(
    library: &crate::library::Library,
    bytes: &[u8],
) -> Result<usize, crate::library::LibraryError> {
    let surveys = library.surveys();
    let answers = surveys.read_csv(bytes, library.now_ms())?;
    for answer in &answers {
        surveys.take(answer)?;
    }
    Ok(answers.len())
}
