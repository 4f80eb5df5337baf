//! # idempo-testkit: what the workspace's test suites share
//!
//! Every crate's property tests choose how many cases to run: cheap properties run many,
//! whole simulations run few. proptest's own `PROPTEST_CASES` environment variable only
//! changes its *default* count, so a test that names its count (`Config { cases: 64, .. }`)
//! would ignore it. [`proptest_cases`] is the one place that decides: the test's own count,
//! unless `PROPTEST_CASES` is set, in which case that. So
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test -p idempo-tests --release
//! ```
//!
//! runs a million cases of every property, with no code edited, and CI (which leaves the
//! variable unset and fixes `PROPTEST_RNG_SEED` in `.ci/run`) keeps each test's own count.
//!
//! It also holds the one seeded mixer, [`splitmix`], which the simulator's fault oracle, the
//! fault proxy's dice and the broker's durability property share.
//!
//! This crate has no dependencies, so every crate reaches it without a dependency cycle: the
//! test crates (`protocol`, `broker`, `tests`) as a dev-dependency, the testing tools (`sim`,
//! `net`) for [`splitmix`].
//!
//! ## Layout
//! - [`proptest_cases`]: the case count for one property test.
//! - [`ProptestCasesError`]: a `PROPTEST_CASES` that is not a count.
//! - [`splitmix`]: SplitMix64, the seeded mixer of the simulator, the proxy and the tests.

use std::fmt;

pub mod splitmix;

/// The environment variable proptest reads for its default case count.
pub const PROPTEST_CASES: &str = "PROPTEST_CASES";

/// How many cases a property test runs: `PROPTEST_CASES` when it is set (and not empty),
/// otherwise `default`, the count the test chose for CI.
///
/// # Panics
///
/// When `PROPTEST_CASES` is set to something that is not a whole number of cases (a `u32`):
/// a test run that silently ignored a mistyped `1_000_000` would look like it passed a
/// million cases.
///
/// # Examples
///
/// ```
/// use idempo_testkit::proptest_cases;
///
/// let cases = proptest_cases(64);
/// // 64 in CI; whatever PROPTEST_CASES says when a user sets it.
/// assert!(std::env::var("PROPTEST_CASES").is_ok() || cases == 64);
/// ```
pub fn proptest_cases(default: u32) -> u32 {
    let value = std::env::var(PROPTEST_CASES).ok();
    match cases_from(value.as_deref(), default) {
        Ok(cases) => cases,
        Err(error) => panic!("{error}"),
    }
}

/// [`proptest_cases`] with the variable's value passed in: `None` when it is unset.
pub fn cases_from(value: Option<&str>, default: u32) -> Result<u32, ProptestCasesError> {
    match value.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text.parse().map_err(|_| ProptestCasesError {
            value: text.to_owned(),
        }),
    }
}

/// `PROPTEST_CASES` holds something that is not a whole number of cases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProptestCasesError {
    /// The variable's value, trimmed.
    pub value: String,
}

impl fmt::Display for ProptestCasesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PROPTEST_CASES} must be a whole number of cases (0 to {}), got {:?}",
            u32::MAX,
            self.value
        )
    }
}

impl std::error::Error for ProptestCasesError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variable_keeps_the_tests_own_count() {
        assert_eq!(cases_from(None, 64), Ok(64));
    }

    #[test]
    fn empty_variable_counts_as_unset() {
        assert_eq!(cases_from(Some(""), 64), Ok(64));
        assert_eq!(cases_from(Some("  "), 32), Ok(32));
    }

    #[test]
    fn set_variable_replaces_the_count_up_or_down() {
        assert_eq!(cases_from(Some("1000000"), 64), Ok(1_000_000));
        assert_eq!(cases_from(Some("8"), 256), Ok(8));
        assert_eq!(cases_from(Some(" 500 "), 64), Ok(500));
    }

    #[test]
    fn a_value_that_is_not_a_count_is_an_error_naming_the_variable() {
        for value in ["1_000_000", "-1", "1e6", "many", "4294967296"] {
            let error = cases_from(Some(value), 64).expect_err(value);
            assert_eq!(error.value, value);
            let message = error.to_string();
            assert!(
                message.contains("PROPTEST_CASES") && message.contains(value),
                "message {message:?} should name the variable and the value"
            );
        }
    }
}
