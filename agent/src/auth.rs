//! Clients' bearer tokens and what each may do. Off unless `--auth-tokens`
//! names a file; then every request is made by a `Caller` the faces take
//! from `Authorization: Bearer …`, and each service method checks the action
//! it performs (`Caller::check`), so every face enforces the same rules.
//!
//! The file holds each token's SHA-256, never the token: tokens are 256-bit
//! random strings (`floe-agent token new`), for which a fast hash is as good
//! as a slow one, and a presented token is hashed and compared against every
//! entry in constant time. The file is read again on SIGHUP.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// What a caller is about to do; each service method checks one or more.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    /// Create, change or delete topics.
    Admin,
    Produce(&'a str),
    /// Produce to some topic (what an idempotent producer id is for).
    ProduceAny,
    Consume(&'a str),
    /// See a topic's settings and offsets: produce or consume rights on it.
    Describe(&'a str),
    /// Join, read through or commit for this consumer group.
    Group(&'a str),
    /// Anything any valid token may do: list topics, read agent stats.
    Authenticated,
}

/// The endpoints that stay open to callers without a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenEndpoint {
    Healthz,
    Readyz,
    Metrics,
}

/// Who makes a request.
#[derive(Clone, Debug)]
pub enum Caller {
    /// Authentication is off: everything is allowed.
    Unrestricted,
    /// Authentication is on and the request carries no token.
    Anonymous,
    Token(Arc<Grant>),
}

impl Caller {
    /// `Unauthenticated` for a caller without a token, `Forbidden` for a
    /// token without the permission.
    pub fn check(&self, action: Action<'_>) -> Result<()> {
        match self {
            Caller::Unrestricted => Ok(()),
            Caller::Anonymous => Err(Error::Unauthenticated { message: "this request needs a bearer token".into() }),
            Caller::Token(grant) if grant.allows(action) => Ok(()),
            Caller::Token(grant) => {
                Err(Error::Forbidden { message: format!("token {:?} may not {action}", grant.name) })
            }
        }
    }

    pub fn may(&self, action: Action<'_>) -> bool {
        self.check(action).is_ok()
    }

    /// The topics the caller may consume, for a group coordinator (perhaps
    /// on another agent) to apply before it moves any read position.
    pub fn consume_scope(&self) -> ConsumeScope {
        match self {
            Caller::Unrestricted => ConsumeScope(None),
            Caller::Token(grant) if grant.admin => ConsumeScope(None),
            Caller::Token(grant) => ConsumeScope(Some(grant.consume.clone())),
            Caller::Anonymous => ConsumeScope(Some(Vec::new())),
        }
    }
}

/// The topics a caller may consume: `None` for every topic. Travels with
/// group fetches and commits to the coordinator. Absent (from an agent of
/// a version without tokens), it means every topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumeScope(Option<Vec<Pattern>>);

impl ConsumeScope {
    pub fn allows(&self, topic: &str) -> bool {
        self.0.as_ref().is_none_or(|patterns| patterns.iter().any(|p| p.matches(topic)))
    }
}

impl std::fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Admin => write!(f, "administer topics"),
            Action::Produce(t) => write!(f, "produce to topic {t:?}"),
            Action::ProduceAny => write!(f, "produce to any topic"),
            Action::Consume(t) => write!(f, "consume from topic {t:?}"),
            Action::Describe(t) => write!(f, "see topic {t:?}"),
            Action::Group(g) => write!(f, "use consumer group {g:?}"),
            Action::Authenticated => write!(f, "do this"),
        }
    }
}

/// One token's permissions.
#[derive(Debug)]
pub struct Grant {
    pub name: String,
    /// The token's hash: finds the grant again after a reload.
    hash: [u8; 32],
    admin: bool,
    produce: Vec<Pattern>,
    consume: Vec<Pattern>,
    groups: Vec<Pattern>,
}

impl Grant {
    fn allows(&self, action: Action<'_>) -> bool {
        let any = |patterns: &[Pattern], name: &str| patterns.iter().any(|p| p.matches(name));
        self.admin
            || match action {
                Action::Admin => false,
                Action::Produce(t) => any(&self.produce, t),
                Action::ProduceAny => !self.produce.is_empty(),
                Action::Consume(t) => any(&self.consume, t),
                Action::Describe(t) => any(&self.produce, t) || any(&self.consume, t),
                Action::Group(g) => any(&self.groups, g),
                Action::Authenticated => true,
            }
    }
}

/// A resource name pattern, as Kafka's ACLs have them: a literal name, a
/// prefix (`orders.*`), or `*` for every name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    Literal(String),
    Prefix(String),
}

impl Pattern {
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let (stem, prefix) = match text.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (text, false),
        };
        if stem.contains('*') {
            return Err(format!("pattern {text:?}: `*` may only end a pattern"));
        }
        if stem.is_empty() && !prefix {
            return Err("an empty pattern matches nothing; use \"*\" for every name".into());
        }
        Ok(if prefix { Pattern::Prefix(stem.to_owned()) } else { Pattern::Literal(stem.to_owned()) })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Literal(l) => l == name,
            Pattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// The tokens file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    /// Hex SHA-256 of the token.
    sha256: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    produce: Vec<String>,
    #[serde(default)]
    consume: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// The tokens in force.
struct TokenSet {
    entries: Vec<Arc<Grant>>,
}

impl TokenSet {
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let file: TokensFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut names = BTreeSet::new();
        let mut entries = Vec::with_capacity(file.token.len());
        for entry in file.token {
            if !names.insert(entry.name.clone()) {
                return Err(format!("token name {:?} is used twice", entry.name));
            }
            let hash = parse_hash(&entry.sha256).ok_or_else(|| {
                format!("token {:?}: sha256 must be 64 hex digits (the token's SHA-256, not the token)", entry.name)
            })?;
            if entries.iter().any(|g: &Arc<Grant>| g.hash == hash) {
                return Err(format!("token {:?} has the same hash as another token", entry.name));
            }
            let patterns = |list: &[String]| {
                list.iter()
                    .map(|p| Pattern::parse(p))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| format!("token {:?}: {e}", entry.name))
            };
            let grant = Grant {
                hash,
                admin: entry.admin,
                produce: patterns(&entry.produce)?,
                consume: patterns(&entry.consume)?,
                groups: patterns(&entry.groups)?,
                name: entry.name,
            };
            entries.push(Arc::new(grant));
        }
        Ok(Self { entries })
    }

    /// The grant whose hash is the token's.
    fn find(&self, token: &str) -> Option<Arc<Grant>> {
        self.by_hash(&sha256(token.as_bytes()))
    }

    /// The grant with this hash, comparing every entry in constant time.
    fn by_hash(&self, hash: &[u8; 32]) -> Option<Arc<Grant>> {
        let mut found = None;
        for grant in &self.entries {
            if bool::from(grant.hash.ct_eq(hash)) {
                found = Some(grant.clone());
            }
        }
        found
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut out = [0; 32];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

/// Client authentication: the tokens file and the endpoints left open.
pub struct Auth {
    path: PathBuf,
    open: BTreeSet<OpenEndpoint>,
    tokens: RwLock<Arc<TokenSet>>,
}

impl Auth {
    /// Reads the tokens file; an unreadable or invalid file is an error that
    /// names it.
    pub fn load(path: &Path, open: &[OpenEndpoint]) -> std::result::Result<Self, String> {
        let tokens = read(path)?;
        if tokens.entries.is_empty() {
            tracing::warn!(path = %path.display(), "the tokens file holds no tokens: every request will be refused");
        }
        Ok(Self { path: path.to_owned(), open: open.iter().copied().collect(), tokens: RwLock::new(Arc::new(tokens)) })
    }

    /// Reads the tokens file again. On an error the tokens in force stay.
    pub fn reload(&self) -> std::result::Result<usize, String> {
        let tokens = Arc::new(read(&self.path)?);
        let count = tokens.entries.len();
        *self.tokens.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = tokens;
        Ok(count)
    }

    /// The caller an `Authorization` header value makes: `Anonymous` without
    /// one, `Unauthenticated` for a token that is not in the file (or a
    /// scheme other than Bearer).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller> {
        let Some(value) = authorization else { return Ok(Caller::Anonymous) };
        let unauthenticated = |message: &str| Error::Unauthenticated { message: message.into() };
        let (scheme, token) = value.split_once(' ').ok_or_else(|| unauthenticated("expected `Bearer <token>`"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthenticated("expected `Bearer <token>`"));
        }
        let tokens = self.tokens.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        tokens.find(token.trim()).map(Caller::Token).ok_or_else(|| unauthenticated("unknown token"))
    }

    /// The caller as the tokens in force now see it: a token removed by a
    /// reload is `Unauthenticated`, a changed one has its new permissions.
    pub fn refresh(&self, caller: &Caller) -> Result<Caller> {
        let Caller::Token(grant) = caller else { return Ok(caller.clone()) };
        let tokens = self.tokens.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        tokens
            .by_hash(&grant.hash)
            .map(Caller::Token)
            .ok_or_else(|| Error::Unauthenticated { message: "the token is no longer valid".into() })
    }

    pub fn is_open(&self, endpoint: OpenEndpoint) -> bool {
        self.open.contains(&endpoint)
    }
}

fn read(path: &Path) -> std::result::Result<TokenSet, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read tokens file {}: {e}", path.display()))?;
    TokenSet::parse(&text).map_err(|e| format!("tokens file {}: {e}", path.display()))
}

/// The token made of 32 random bytes, and the tokens-file entry that grants
/// it these permissions (`floe-agent token new`).
pub fn new_token(
    secret: &[u8; 32],
    name: &str,
    admin: bool,
    produce: &[String],
    consume: &[String],
    groups: &[String],
) -> (String, String) {
    let token = format!("floe_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut entry = format!("[[token]]\nname = {name:?}\nsha256 = \"{}\"\n", hex::encode(sha256(token.as_bytes())));
    if admin {
        entry.push_str("admin = true\n");
    }
    for (key, items) in [("produce", produce), ("consume", consume), ("groups", groups)] {
        if !items.is_empty() {
            entry.push_str(&format!("{key} = {}\n", list(items)));
        }
    }
    (token, entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> TokenSet {
        match TokenSet::parse(text) {
            Ok(set) => set,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_token_is_found_by_its_hash_and_only_by_it() {
        let (token, entry) = new_token(&[1; 32], "app", false, &["a".into()], &["a".into(), "logs.*".into()], &[]);
        let tokens = set(&entry);
        let grant = tokens.find(&token).expect("the token's own entry");
        assert_eq!(grant.name, "app");
        assert!(tokens.find(&format!("{token}x")).is_none());
        assert!(tokens.find("").is_none());
        let caller = Caller::Token(grant);
        assert!(caller.may(Action::Produce("a")));
        assert!(!caller.may(Action::Produce("b")));
        assert!(caller.may(Action::Consume("logs.app")));
        assert!(!caller.may(Action::Consume("logs")));
        assert!(!caller.may(Action::Admin));
        assert!(!caller.may(Action::Group("g")));
        assert!(caller.may(Action::Authenticated));
    }

    #[test]
    fn admin_may_do_everything_and_anonymous_nothing() {
        let (token, entry) = new_token(&[2; 32], "root", true, &[], &[], &[]);
        let admin = Caller::Token(set(&entry).find(&token).expect("entry"));
        for action in [Action::Admin, Action::Produce("x"), Action::Consume("y"), Action::Group("g")] {
            assert!(admin.may(action));
            assert!(matches!(Caller::Anonymous.check(action), Err(Error::Unauthenticated { .. })));
        }
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let hash = "a".repeat(64);
        for (text, reason) in [
            ("[[token]]\nname = \"a\"\nsha256 = \"abc\"\n", "64 hex digits"),
            (&format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nproduce = [\"a*b\"]\n"), "may only end"),
            (&format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nconsume = [\"\"]\n"), "empty pattern"),
            (&format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nread = [\"x\"]\n"), "unknown field"),
            (
                &format!(
                    "[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\n[[token]]\nname = \"a\"\nsha256 = \"{}\"\n",
                    "b".repeat(64)
                ),
                "used twice",
            ),
        ] {
            match TokenSet::parse(text) {
                Ok(_) => panic!("accepted {text:?}"),
                Err(e) => assert!(e.contains(reason), "{e:?} should say {reason:?}"),
            }
        }
    }

    #[test]
    fn only_bearer_tokens_authenticate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (token, entry) = new_token(&[3; 32], "app", false, &[], &[], &[]);
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, entry).expect("write");
        let auth = Auth::load(&path, &[]).expect("load");
        assert!(matches!(auth.authenticate(None), Ok(Caller::Anonymous)));
        assert!(matches!(auth.authenticate(Some(&format!("Bearer {token}"))), Ok(Caller::Token(_))));
        assert!(matches!(auth.authenticate(Some(&format!("bearer {token}"))), Ok(Caller::Token(_))));
        assert!(auth.authenticate(Some(&format!("Basic {token}"))).is_err());
        assert!(auth.authenticate(Some("Bearer floe_nope")).is_err());
        // A reload swaps the tokens: the old one no longer works.
        std::fs::write(&path, new_token(&[4; 32], "other", false, &[], &[], &[]).1).expect("rewrite");
        assert_eq!(auth.reload(), Ok(1));
        assert!(auth.authenticate(Some(&format!("Bearer {token}"))).is_err());
    }
}
