//! The masking policy as users write it: rules (what to look at, how to recognise it, what to do), the default
//! policy, the TOML policy file (unknown keys rejected), validation, and the policy fingerprint recorded in every
//! segment header.
//!
//! A rule has a `name` (reported in `Exchange::masked_by`), a `target`, the matchers its target needs and an
//! `action`. Targets and their matchers:
//!
//! | target      | matches                                                     | matchers              |
//! |-------------|-------------------------------------------------------------|-----------------------|
//! | `header`    | header and trailer fields of requests and responses by name | `names`, `patterns`   |
//! | `cookie`    | cookies by name in `Cookie` and `Set-Cookie`                | `names`, `patterns`   |
//! | `query`     | query parameters of the request target by name              | `names`, `patterns`   |
//! | `json_key`  | values of JSON object members by key, at any depth          | `names`, `patterns`   |
//! | `json_path` | JSON values by path (`$.a.b`, `$.items[*].card`, `$.*.x`)   | `paths`               |
//! | `form`      | urlencoded and multipart form fields by name                | `names`, `patterns`   |
//! | `detector`  | values found in header values, query values and text bodies | `detector`, `regex`   |
//! | `grpc`      | gRPC exchanges (optionally only paths matching `patterns`)  | `patterns`            |
//! | `path`      | exchanges whose request path matches one of `patterns`      | `patterns`            |
//!
//! `names` match exactly and `patterns` are regular expressions (unanchored unless written with `^`/`$`); both
//! ignore ASCII case. Actions: `redact` (a fixed marker that keeps the JSON type), `hash` (a keyed token, the same
//! for the same value), `drop_body` (the body of the message where the rule fired is removed, and the matched value
//! redacted), `drop_exchange` (the exchange is not written). `grpc` and `path` rules only drop.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Header and trailer fields by name.
    Header,
    /// Cookies by name (`Cookie`, `Set-Cookie`).
    Cookie,
    /// Query parameters by name.
    Query,
    /// JSON object members by key, at any depth.
    JsonKey,
    /// JSON values by path.
    JsonPath,
    /// Form fields (urlencoded and multipart) by name.
    Form,
    /// Values recognised by a detector.
    Detector,
    /// gRPC exchanges.
    Grpc,
    /// Exchanges by request path.
    Path,
}

/// What a rule does with what it matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace with a fixed marker of the same type.
    Redact,
    /// Replace with a keyed HMAC-SHA256 token.
    Hash,
    /// Remove the body of the message where the rule fired (the matched value is redacted too).
    DropBody,
    /// Do not write the exchange.
    DropExchange,
}

/// A built-in value detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Payment card numbers: 13 to 19 digits (single spaces or dashes between groups) passing the Luhn check.
    Card,
    /// JSON Web Tokens (`eyJ...` `.` `eyJ...` `.` signature).
    Jwt,
    /// The token of `Bearer <token>`.
    Bearer,
    /// Cloud access keys: AWS access key ids (`AKIA...`, `ASIA...`), AWS secret keys after
    /// `aws_secret_access_key`, Google API keys (`AIza...`).
    CloudKey,
    /// E-mail addresses.
    Email,
    /// The rule's own `regex` (capture group 1 when it has one, else the whole match).
    Regex,
}

/// How a policy file combines with the default policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The file's rules are added to the default policy; a file rule with the name of a default rule replaces it.
    #[default]
    Extend,
    /// The file's rules are the whole policy.
    Replace,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The rule's name, unique in the policy; recorded in `Exchange::masked_by` when it fires.
    pub name: String,
    /// What it looks at.
    pub target: Target,
    /// Exact names (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Regular expressions over names (case-insensitive), or over the request path for `grpc` and `path`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    /// JSON paths (`json_path` rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// The detector (`detector` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<DetectorKind>,
    /// The regular expression of a `regex` detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// What to do.
    pub action: Action,
}

/// A policy file: `mode` and `[[rule]]` tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Extend (default) or replace the default policy.
    #[serde(default)]
    pub mode: Mode,
    /// The rules.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

/// The effective policy: rules in the order they are tried (the first matching rule of a target wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The rules.
    pub rules: Vec<Rule>,
}

/// A policy that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file is not valid TOML or has unknown keys or values.
    #[error("masking policy {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong (from the TOML parser, with line and column).
        message: String,
    },
    /// A rule is incomplete or contradictory.
    #[error("masking rule {rule:?}: {message}")]
    Rule {
        /// The rule's name.
        rule: String,
        /// What is wrong.
        message: String,
    },
    /// A `hash` rule but no key.
    #[error(
        "masking rule {0:?} hashes values but no key was given (--mask-key-file FILE or the TAPEDECK_MASK_KEY \
         environment variable)"
    )]
    NoKey(String),
    /// The key could not be read or is too short.
    #[error("masking key: {0}")]
    Key(String),
}

fn rule(name: &str, target: Target, names: &[&str], patterns: &[&str], action: Action) -> Rule {
    Rule {
        name: name.into(),
        target,
        names: names.iter().map(|s| s.to_string()).collect(),
        patterns: patterns.iter().map(|s| s.to_string()).collect(),
        paths: Vec::new(),
        detector: None,
        regex: None,
        action,
    }
}

/// Names of JSON keys, form fields and query parameters whose values the default policy redacts: passwords and
/// other secrets that are not useful to correlate (a keyed token of a password could be tested against guesses by
/// whoever holds the key).
const SECRET_NAMES: &[&str] = &["password", "passwd", "pwd", "pass", "private_key", "credentials", "cvv", "cvc"];
/// Patterns of those names.
const SECRET_PATTERNS: &[&str] = &[r"passw(or)?d", r"private[-_]?key", r"credential"];
/// Names of JSON keys, form fields and query parameters whose values the default policy replaces by keyed tokens:
/// tokens, session ids and API keys, which tell sessions and clients apart.
const TOKEN_NAMES: &[&str] = &[
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "client_secret",
    "authorization",
];
/// Patterns of those names.
const TOKEN_PATTERNS: &[&str] = &[r"secret", r"token", r"api[-_]?key", r"session[-_]?id"];

/// Credential header fields of the default policy (their values become keyed tokens; `Authorization` and
/// `Proxy-Authorization` keep their scheme word: `Bearer tdk_...`).
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-csrf-token",
    "x-xsrf-token",
    "x-amz-security-token",
    "x-goog-api-key",
];

impl Policy {
    /// The default policy. Keyed tokens (`hash`, so a key is needed): credential header fields, every cookie value
    /// (`Cookie`, and the first pair of `Set-Cookie`), token-like JSON keys, form fields and query parameters,
    /// and what the JWT, bearer-token and cloud-key detectors find in any header value, query value or text
    /// body. Redacted: password-like JSON keys, form fields and query parameters, and payment card numbers.
    pub fn default_policy() -> Policy {
        let detector = |name: &str, kind: DetectorKind, action: Action| Rule {
            detector: Some(kind),
            ..rule(name, Target::Detector, &[], &[], action)
        };
        Policy {
            rules: vec![
                rule(
                    "auth-headers",
                    Target::Header,
                    CREDENTIAL_HEADERS,
                    &[r"^x-.*(token|secret|api-?key|password)"],
                    Action::Hash,
                ),
                rule("cookies", Target::Cookie, &[], &["^"], Action::Hash),
                rule("secret-json-keys", Target::JsonKey, SECRET_NAMES, SECRET_PATTERNS, Action::Redact),
                rule("secret-form-fields", Target::Form, SECRET_NAMES, SECRET_PATTERNS, Action::Redact),
                rule("secret-query-params", Target::Query, SECRET_NAMES, SECRET_PATTERNS, Action::Redact),
                rule("token-json-keys", Target::JsonKey, TOKEN_NAMES, TOKEN_PATTERNS, Action::Hash),
                rule("token-form-fields", Target::Form, TOKEN_NAMES, TOKEN_PATTERNS, Action::Hash),
                rule("token-query-params", Target::Query, TOKEN_NAMES, TOKEN_PATTERNS, Action::Hash),
                detector("payment-cards", DetectorKind::Card, Action::Redact),
                detector("jwts", DetectorKind::Jwt, Action::Hash),
                detector("bearer-tokens", DetectorKind::Bearer, Action::Hash),
                detector("cloud-keys", DetectorKind::CloudKey, Action::Hash),
            ],
        }
    }

    /// Parses a TOML policy file (unknown keys are errors). `path` is only used in messages.
    pub fn parse_file(path: &str, text: &str) -> Result<PolicyFile, PolicyError> {
        toml::from_str(text).map_err(|e| PolicyError::Parse { path: path.into(), message: e.to_string() })
    }

    /// The effective policy: the default (unless `default_on` is false) combined with `file`, validated.
    pub fn build(default_on: bool, file: Option<PolicyFile>) -> Result<Policy, PolicyError> {
        let mut rules = if default_on { Policy::default_policy().rules } else { Vec::new() };
        if let Some(file) = file {
            for (i, r) in file.rules.iter().enumerate() {
                if file.rules[..i].iter().any(|o| o.name == r.name) {
                    return Err(PolicyError::Rule { rule: r.name.clone(), message: "two rules have this name".into() });
                }
            }
            if file.mode == Mode::Replace {
                rules.clear();
            }
            for r in file.rules {
                match rules.iter_mut().find(|d| d.name == r.name) {
                    Some(slot) if file.mode == Mode::Extend => *slot = r,
                    _ => rules.push(r),
                }
            }
        }
        let p = Policy { rules };
        p.validate()?;
        Ok(p)
    }

    /// Checks that every rule has what its target needs, names are unique and regular expressions compile.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (i, r) in self.rules.iter().enumerate() {
            let err = |m: &str| Err(PolicyError::Rule { rule: r.name.clone(), message: m.into() });
            if r.name.is_empty() || r.name.starts_with('@') || r.name.chars().any(char::is_control) {
                return err("a name must be non-empty, printable and must not start with '@'");
            }
            if self.rules[..i].iter().any(|o| o.name == r.name) {
                return err("two rules have this name");
            }
            let by_name =
                matches!(r.target, Target::Header | Target::Cookie | Target::Query | Target::JsonKey | Target::Form);
            if by_name && r.names.is_empty() && r.patterns.is_empty() {
                return err("needs `names` or `patterns`");
            }
            if !by_name && !r.names.is_empty() {
                return err("`names` is only for header, cookie, query, json_key and form rules");
            }
            if (r.target == Target::JsonPath) == r.paths.is_empty() {
                return err("`paths` is required by, and only for, json_path rules");
            }
            for p in &r.paths {
                if let Err(m) = crate::mask::json::JsonPath::parse(p) {
                    return err(&format!("path {p:?}: {m}"));
                }
            }
            if matches!(r.target, Target::Detector | Target::JsonPath) && !r.patterns.is_empty() {
                return err("`patterns` is not used by this target");
            }
            if r.target == Target::Path && r.patterns.is_empty() {
                return err("needs `patterns` (regular expressions over the request path)");
            }
            if matches!(r.target, Target::Grpc | Target::Path)
                && !matches!(r.action, Action::DropBody | Action::DropExchange)
            {
                return err("grpc and path rules can only drop_body or drop_exchange");
            }
            match (r.target, r.detector, r.regex.is_some()) {
                (Target::Detector, Some(DetectorKind::Regex), true) => {}
                (Target::Detector, Some(DetectorKind::Regex), false) => return err("the regex detector needs `regex`"),
                (Target::Detector, Some(_), false) => {}
                (Target::Detector, Some(_), true) => return err("`regex` is only for the regex detector"),
                (Target::Detector, None, _) => return err("needs `detector`"),
                (_, None, false) => {}
                _ => return err("`detector` and `regex` are only for detector rules"),
            }
            for p in r.patterns.iter().chain(r.regex.iter()) {
                if let Err(e) =
                    regex::RegexBuilder::new(p).size_limit(1 << 20).dfa_size_limit(super::REGEX_CACHE).build()
                {
                    return err(&format!("pattern {p:?}: {e}"));
                }
            }
        }
        Ok(())
    }

    /// Whether some rule hashes (and so needs a key); the first such rule's name.
    pub fn first_hash_rule(&self) -> Option<&str> {
        self.rules.iter().find(|r| r.action == Action::Hash).map(|r| r.name.as_str())
    }

    /// The policy as a TOML policy file (`mode = "replace"`), which read back gives the same policy.
    pub fn to_toml(&self) -> String {
        let file = PolicyFile { mode: Mode::Replace, rules: self.rules.clone() };
        toml::to_string(&file).unwrap_or_else(|e| format!("# cannot render the policy: {e}\n"))
    }

    /// SHA-256 of the policy's canonical form (a version tag and the rules as JSON, in order). Two agents with the
    /// same effective rules record the same fingerprint; the hash key is not part of it.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"tapedeck-masking-policy-v1\n");
        h.update(serde_json::to_vec(&self.rules).unwrap_or_default());
        h.finalize().into()
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    struct Hex<'a>(&'a [u8]);
    impl fmt::Display for Hex<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
    Hex(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_valid_and_covers_the_usual_credentials() {
        let p = Policy::default_policy();
        p.validate().unwrap();
        let headers = &p.rules.iter().find(|r| r.target == Target::Header).unwrap().names;
        for h in ["authorization", "proxy-authorization", "x-api-key"] {
            assert!(headers.iter().any(|n| n == h), "{h}");
        }
        let by_name = |n: &str| p.rules.iter().find(|r| r.name == n).unwrap();
        assert_eq!(by_name("auth-headers").action, Action::Hash, "credentials become keyed tokens");
        assert_eq!((by_name("cookies").target, by_name("cookies").action), (Target::Cookie, Action::Hash));
        assert_eq!(by_name("secret-json-keys").action, Action::Redact, "passwords are not tokenised");
        let detectors: Vec<(DetectorKind, Action)> =
            p.rules.iter().filter_map(|r| r.detector.map(|d| (d, r.action))).collect();
        assert_eq!(
            detectors,
            [
                (DetectorKind::Card, Action::Redact),
                (DetectorKind::Jwt, Action::Hash),
                (DetectorKind::Bearer, Action::Hash),
                (DetectorKind::CloudKey, Action::Hash)
            ]
        );
        assert_eq!(p.first_hash_rule(), Some("auth-headers"), "the default policy needs a key");
    }

    #[test]
    fn a_file_extends_or_replaces_the_default() {
        let file = Policy::parse_file(
            "p.toml",
            r#"
            [[rule]]
            name = "emails"
            target = "detector"
            detector = "email"
            action = "hash"

            [[rule]]
            name = "payment-cards"
            target = "detector"
            detector = "card"
            action = "hash"
            "#,
        )
        .unwrap();
        let p = Policy::build(true, Some(file.clone())).unwrap();
        let n = Policy::default_policy().rules.len();
        assert_eq!(p.rules.len(), n + 1, "payment-cards replaced in place, emails added");
        assert_eq!(p.rules.iter().find(|r| r.name == "payment-cards").unwrap().action, Action::Hash);
        assert_eq!(p.rules.last().unwrap().name, "emails");
        let replaced = Policy::build(true, Some(PolicyFile { mode: Mode::Replace, ..file })).unwrap();
        assert_eq!(replaced.rules.len(), 2);
        assert_eq!(Policy::build(false, None).unwrap().rules.len(), 0);
    }

    #[test]
    fn unknown_keys_and_bad_rules_are_rejected() {
        let unknown = Policy::parse_file(
            "p.toml",
            "[[rule]]\nname='a'\ntarget='header'\nnames=['x']\naction='redact'\ncolour='red'\n",
        );
        let e = unknown.unwrap_err().to_string();
        assert!(e.contains("p.toml") && e.contains("colour"), "{e}");
        assert!(Policy::parse_file("p.toml", "modes = 'extend'\n").is_err());
        assert!(Policy::parse_file("p.toml", "[[rule]]\nname='a'\ntarget='nose'\naction='redact'\n").is_err());
        let bad = |toml: &str| {
            let f = Policy::parse_file("p.toml", toml).unwrap();
            Policy::build(false, Some(f)).unwrap_err().to_string()
        };
        assert!(bad("[[rule]]\nname='a'\ntarget='header'\naction='redact'\n").contains("needs `names`"));
        assert!(bad("[[rule]]\nname='a'\ntarget='detector'\ndetector='regex'\naction='redact'\n").contains("regex"));
        assert!(bad("[[rule]]\nname='a'\ntarget='header'\npatterns=['(']\naction='redact'\n").contains("pattern"));
        assert!(bad("[[rule]]\nname='a'\ntarget='grpc'\naction='redact'\n").contains("only drop"));
        assert!(bad("[[rule]]\nname='a'\ntarget='json_path'\npaths=['a.b']\naction='redact'\n").contains("path"));
        let twice = "[[rule]]\nname='a'\ntarget='cookie'\nnames=['s']\naction='redact'\n";
        assert!(bad(&format!("{twice}{twice}")).contains("two rules"));
    }

    #[test]
    fn the_printed_policy_reads_back_to_the_same_fingerprint() {
        let p = Policy::default_policy();
        let text = p.to_toml();
        let back = Policy::build(true, Some(Policy::parse_file("printed", &text).unwrap())).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.fingerprint(), p.fingerprint());
        let mut other = p.clone();
        other.rules[0].action = Action::Redact;
        assert_ne!(other.fingerprint(), p.fingerprint());
        assert_eq!(hex(&[0x00, 0xAB, 0x7f]), "00ab7f");
    }
}
