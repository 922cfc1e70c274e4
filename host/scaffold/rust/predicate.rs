//! @TITLE@: a Stepwise criterion. It holds when the contact's email address
//! is at one of the listed domains; make `evaluate` decide what yours does.

use stepwise_plugin_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Email domains, such as `example.com`.
    domains: Vec<String>,
}

struct Criterion;

impl Predicate for Criterion {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::predicate("@ID@", "@TITLE@")
            .description("holds when the contact's email address is at one of the listed domains")
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        match config.domains.is_empty() {
            true => vec![ConfigProblem::new("/domains", "list at least one domain")],
            false => Vec::new(),
        }
    }

    fn evaluate(_: &StepContext, config: Config, subject: &Subject) -> Result<bool, String> {
        Ok(subject.contact.email.as_deref().is_some_and(|email| at_one_of(email, &config.domains)))
    }
}

/// Whether `email` is at one of `domains`, ignoring case.
fn at_one_of(email: &str, domains: &[String]) -> bool {
    let domain = email.rsplit_once('@').map_or("", |(_, domain)| domain);
    domains.iter().any(|d| d.trim().eq_ignore_ascii_case(domain))
}

stepwise_plugin_sdk::export_predicate!(Criterion);

#[cfg(test)]
mod tests {
    use super::at_one_of;

    #[test]
    fn an_address_is_at_a_listed_domain_whatever_its_case() {
        let domains = ["example.com".to_owned()];
        assert!(at_one_of("ada@Example.COM", &domains));
        assert!(!at_one_of("ada@example.org", &domains));
        assert!(!at_one_of("not an address", &domains));
    }
}
