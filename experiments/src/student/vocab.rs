//! The student's vocabulary: the teacher-tokenizer ids seen in its training corpus, plus two
//! reserved ids (a text boundary and "unknown").

use greenmark_lm::{LmError, Result};

/// The student id of the text boundary: fed before every text, and predicted at its end.
pub(crate) const BOUNDARY: u32 = 0;
/// The student id of a teacher id that never occurred in training.
pub(crate) const UNKNOWN: u32 = 1;
/// The first student id of a real token.
pub(crate) const FIRST: u32 = 2;

/// Maps the teacher tokenizer's ids (the *base* vocabulary, e.g. SmolLM2's 49,152) to the
/// student's compact ids and back.
///
/// The student only models the tokens of its training corpus: a corpus of ~40k tokens uses a
/// few thousand distinct ids, so the embedding (tied to the output layer) is ~10x smaller than
/// one over the whole base vocabulary, and so is the cost of every output projection. A base
/// id never seen in training reads as "unknown" and is never written or predicted.
///
/// # Example
/// ```
/// use greenmark_experiments::student::StudentVocab;
///
/// let vocab = StudentVocab::from_corpus(&[vec![30, 7, 7], vec![12]], 100)?;
/// assert_eq!(vocab.ids(), &[7, 12, 30]);
/// let compact = vocab.encode(&[12, 30, 50])?; // 50 was never seen
/// assert_eq!(vocab.decode(&compact), vec![Some(12), Some(30), None]);
/// assert!(vocab.encode(&[100]).is_err()); // outside the base vocabulary
/// # Ok::<(), greenmark_lm::LmError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentVocab {
    ids: Vec<u32>,
    base_size: u32,
}

impl StudentVocab {
    /// The vocabulary of a corpus of base-vocabulary ids (`base_size` ids in all).
    ///
    /// Fails with [`LmError::InvalidInput`] on an empty corpus (no token at all) and on an
    /// id `>= base_size`.
    pub fn from_corpus(corpus: &[Vec<u32>], base_size: u32) -> Result<StudentVocab> {
        let mut ids = Vec::new();
        for (i, text) in corpus.iter().enumerate() {
            check_ids(text, base_size, &format!("training text {i}"))?;
            ids.extend_from_slice(text);
        }
        if ids.is_empty() {
            return Err(LmError::InvalidInput(
                "the training corpus has no tokens: give at least one non-empty text".into(),
            ));
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(StudentVocab { ids, base_size })
    }

    /// Rebuilds a vocabulary from its sorted, distinct base ids (as saved).
    pub(crate) fn from_ids(ids: Vec<u32>, base_size: u32) -> std::result::Result<Self, String> {
        if ids.is_empty() {
            return Err("the vocabulary is empty".into());
        }
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err("the vocabulary ids are not sorted and distinct".into());
        }
        if ids[ids.len() - 1] >= base_size {
            return Err(format!(
                "vocabulary id {} is outside the base vocabulary of {base_size}",
                ids[ids.len() - 1]
            ));
        }
        Ok(StudentVocab { ids, base_size })
    }

    /// The base ids the student knows, sorted.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The size of the base vocabulary (the teacher tokenizer's).
    pub fn base_size(&self) -> u32 {
        self.base_size
    }

    /// The number of student ids: the known base ids plus the two reserved ones.
    pub fn len(&self) -> usize {
        self.ids.len() + FIRST as usize
    }

    /// Never true: a vocabulary holds at least one token (and the two reserved ids).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Student ids of base ids; a base id never seen in training becomes "unknown".
    ///
    /// Fails with [`LmError::InvalidInput`] on an id `>= base_size`.
    pub fn encode(&self, base: &[u32]) -> Result<Vec<u32>> {
        check_ids(base, self.base_size, "the input")?;
        Ok(base.iter().map(|&id| self.student_id(id)).collect())
    }

    /// Base ids of student ids; `None` for the reserved ids (boundary, unknown) and for ids
    /// outside the student's vocabulary.
    pub fn decode(&self, student: &[u32]) -> Vec<Option<u32>> {
        student.iter().map(|&s| self.base_id(s)).collect()
    }

    pub(crate) fn student_id(&self, base: u32) -> u32 {
        match self.ids.binary_search(&base) {
            Ok(i) => FIRST + i as u32,
            Err(_) => UNKNOWN,
        }
    }

    pub(crate) fn base_id(&self, student: u32) -> Option<u32> {
        let i = student.checked_sub(FIRST)?;
        self.ids.get(i as usize).copied()
    }
}

fn check_ids(ids: &[u32], base_size: u32, what: &str) -> Result<()> {
    match ids.iter().position(|&id| id >= base_size) {
        Some(j) => Err(LmError::InvalidInput(format!(
            "{what} has token id {} at position {j}, outside the base vocabulary of \
             {base_size} ids: give ids of the teacher's tokenizer (or raise base_vocab_size)",
            ids[j]
        ))),
        None => Ok(()),
    }
}
