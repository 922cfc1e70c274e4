//! A rep's completion of a manual step: checking the result they chose.

/// Checks that the `result` a rep completed a step with is one of `codes`.
///
/// # Errors
///
/// A message for people naming the result and what was expected:
/// ``unknown result `busy`: expected one of no_answer, interested``, or
/// ``unknown result `x`: expected done`` when there is one code.
///
/// # Examples
///
/// ```
/// use stepwise_plugin_sdk::check_result;
///
/// assert_eq!(check_result("done", &["done"]), Ok(()));
/// assert_eq!(check_result("none", &["done"]).unwrap_err(), "unknown result `none`: expected done");
/// ```
pub fn check_result(result: &str, codes: &[&str]) -> Result<(), String> {
    if codes.contains(&result) {
        return Ok(());
    }
    match codes {
        [code] => Err(format!("unknown result `{result}`: expected {code}")),
        codes => Err(format!("unknown result `{result}`: expected one of {}", codes.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_result_is_accepted() {
        assert_eq!(check_result("b", &["a", "b", "c"]), Ok(()));
        assert_eq!(check_result("sent", &["sent"]), Ok(()));
    }

    #[test]
    fn any_other_result_names_the_expected_ones() {
        assert_eq!(check_result("d", &["a", "b", "c"]).unwrap_err(), "unknown result `d`: expected one of a, b, c");
        assert_eq!(check_result("delivered", &["sent"]).unwrap_err(), "unknown result `delivered`: expected sent");
        assert_eq!(check_result("", &["sent"]).unwrap_err(), "unknown result ``: expected sent");
    }
}
