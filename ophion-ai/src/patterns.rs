//! Log pattern mining: an online template miner in the family of Drain
//! (He et al., ICWS 2017), with one default configuration for all logs.
//!
//! Each message is split into tokens; tokens that carry data (anything
//! with a digit, hex strings, paths of ids) are masked to `<*>` first, which
//! is what lets one configuration serve many log formats. Messages are then
//! grouped by token count and first constant token, and within a group
//! joined to the most similar template above a similarity threshold, or
//! start a new one. When a message joins a template, the positions where
//! they differ become `<*>`, unless the template's constants are settled
//! (seen in many messages): then the message is another event. Messages
//! whose constant tokens match a template's exactly but which hold more or
//! fewer variables (`sent 0 bytes` / `sent 10 bytes (1.2 KB)`) join it.
//!
//! Template ids are given at creation and never change, even as the
//! template text generalises, so counts over time stay attached to one id.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A stable template id.
pub type TemplateId = u32;

/// The wildcard that stands for a variable token.
pub const WILDCARD: &str = "<*>";

/// Settings of the miner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MinerConfig {
    /// Share of positions (0-1) that must hold the same constant token for
    /// a message to join a template.
    pub similarity: f64,
    /// At most this many templates per group are compared; more are
    /// merged into the best match (bounded work per message).
    pub max_templates_per_group: usize,
    /// Once this many messages agreed on a constant token, a message that
    /// differs there starts a new template instead of turning the token
    /// into a variable (`client WindowsUpdateAgent` seen 600 times, then
    /// `client SPP`, is another event). Below it, templates generalise
    /// freely, which is how variables without digits (user names) are
    /// learnt.
    pub settle_after: u64,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            similarity: 0.8,
            max_templates_per_group: 256,
            settle_after: 10,
        }
    }
}

/// A template as saved: its id is its position in [`MinerState::templates`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Tokens, `<*>` for variables.
    pub tokens: Vec<Box<str>>,
    /// Messages seen.
    pub count: u64,
}

/// What a miner knows, to save and restore so template ids survive a
/// restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerState {
    /// The settings.
    pub config: MinerConfig,
    /// Every template, by id.
    pub templates: Vec<Template>,
}

/// The miner: feed it messages one at a time.
#[derive(Debug, Default)]
pub struct TemplateMiner {
    config: MinerConfig,
    templates: Vec<Template>,
    groups: HashMap<(usize, Box<str>), Vec<TemplateId>>,
    skeletons: HashMap<Box<str>, TemplateId>,
}

/// Month and weekday names: parts of dates written into messages.
const DATE_WORDS: [&str; 19] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Mon",
    "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
];

/// Whether `token` carries data rather than wording.
fn is_variable(token: &str) -> bool {
    // An empty value in brackets: `()`, `[]`, `""`.
    if matches!(token, "()" | "[]" | "{}" | "\"\"" | "''") {
        return true;
    }
    let core = token.trim_matches(|c: char| !c.is_alphanumeric());
    if core.is_empty() {
        return false;
    }
    if DATE_WORDS.contains(&core) {
        return true;
    }
    if core.bytes().any(|b| b.is_ascii_digit()) {
        return true;
    }
    // Long hex strings without digits are rare but exist (ids, hashes).
    core.len() >= 8 && core.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Splits a message into tokens, masking variables. A parenthesised group
/// of up to four words holding a number (`(1.16 KB)`) is one variable.
pub fn tokens(message: &str) -> Vec<&str> {
    let words: Vec<&str> = message.split_whitespace().collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if w.starts_with('(') && !w.ends_with(')') {
            let close = (i + 1..words.len().min(i + 4)).find(|&j| words[j].ends_with(')'));
            if let Some(j) = close
                && words[i..=j]
                    .iter()
                    .any(|t| t.bytes().any(|b| b.is_ascii_digit()))
            {
                out.push(WILDCARD);
                i = j + 1;
                continue;
            }
        }
        // `key=value` keeps the key as wording when it is a plain name.
        let split = w.find('=').filter(|&k| {
            k > 0
                && k + 1 < w.len()
                && w[..k]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        });
        let parts = match split {
            Some(k) => [Some(&w[..=k]), Some(&w[k + 1..])],
            None => [Some(w), None],
        };
        for t in parts.into_iter().flatten() {
            out.push(if is_variable(t) { WILDCARD } else { t });
        }
        i += 1;
    }
    out
}

/// The constant tokens of a message, in order: messages of one event that
/// differ only in how many variables they hold share it.
fn skeleton(toks: &[&str]) -> Box<str> {
    let mut s = String::new();
    for t in toks.iter().filter(|t| **t != WILDCARD) {
        s.push_str(t);
        s.push(' ');
    }
    s.into()
}

impl TemplateMiner {
    /// A miner with `config`.
    pub fn new(config: MinerConfig) -> Self {
        Self {
            config,
            templates: Vec::new(),
            groups: HashMap::new(),
            skeletons: HashMap::new(),
        }
    }

    /// What the miner knows, for [`TemplateMiner::restore`].
    pub fn state(&self) -> MinerState {
        MinerState {
            config: self.config.clone(),
            templates: self.templates.clone(),
        }
    }

    /// A miner that goes on from a saved state: the same templates under
    /// the same ids.
    pub fn restore(state: MinerState) -> Self {
        let mut m = Self::new(state.config);
        for (id, t) in state.templates.into_iter().enumerate() {
            let toks: Vec<&str> = t.tokens.iter().map(|t| &**t).collect();
            let first = toks
                .iter()
                .find(|t| **t != WILDCARD)
                .copied()
                .unwrap_or(WILDCARD);
            m.groups
                .entry((toks.len(), Box::from(first)))
                .or_default()
                .push(id as TemplateId);
            m.skeletons
                .entry(skeleton(&toks))
                .or_insert(id as TemplateId);
            m.templates.push(t);
        }
        m
    }

    /// Adds a message; returns its template's id.
    pub fn add(&mut self, message: &str) -> TemplateId {
        let toks = tokens(message);
        // The same constants in the same order, with more or fewer
        // variables: the same event.
        let skel = skeleton(&toks);
        if !skel.is_empty()
            && let Some(&id) = self.skeletons.get(&skel)
            && self.templates[id as usize].tokens.len() != toks.len()
        {
            self.templates[id as usize].count += 1;
            return id;
        }
        let first = toks
            .iter()
            .find(|t| **t != WILDCARD)
            .copied()
            .unwrap_or(WILDCARD);
        let key = (toks.len(), Box::<str>::from(first));
        let candidates = self.groups.entry(key).or_default();
        let mut best: Option<(f64, TemplateId)> = None;
        for &id in candidates.iter() {
            let t = &self.templates[id as usize];
            let same = t
                .tokens
                .iter()
                .zip(&toks)
                .filter(|(a, b)| &***a == **b)
                .count();
            let sim = if toks.is_empty() {
                1.0
            } else {
                same as f64 / toks.len() as f64
            };
            if best.is_none_or(|(s, _)| sim > s) {
                best = Some((sim, id));
            }
        }
        let joined = match best {
            Some((_, id)) if candidates.len() >= self.config.max_templates_per_group => Some(id),
            Some((sim, id)) if sim >= self.config.similarity => {
                // A constant that many messages agreed on is wording: a
                // message that differs there is another event.
                let t = &self.templates[id as usize];
                let flips = t
                    .tokens
                    .iter()
                    .zip(&toks)
                    .any(|(a, b)| &**a != WILDCARD && &**a != *b);
                (t.count < self.config.settle_after || !flips).then_some(id)
            }
            _ => None,
        };
        let id = match joined {
            Some(id) => {
                let t = &mut self.templates[id as usize];
                for (a, b) in t.tokens.iter_mut().zip(&toks) {
                    if &**a != *b && &**a != WILDCARD {
                        *a = WILDCARD.into();
                    }
                }
                id
            }
            None => {
                let id = self.templates.len() as TemplateId;
                self.templates.push(Template {
                    tokens: toks.iter().map(|t| Box::from(*t)).collect(),
                    count: 0,
                });
                candidates.push(id);
                id
            }
        };
        self.templates[id as usize].count += 1;
        self.skeletons.entry(skel).or_insert(id);
        id
    }

    /// The current text of template `id`.
    pub fn template(&self, id: TemplateId) -> String {
        self.templates
            .get(id as usize)
            .map(|t| t.tokens.join(" "))
            .unwrap_or_default()
    }

    /// Messages seen per template.
    pub fn count(&self, id: TemplateId) -> u64 {
        self.templates.get(id as usize).map_or(0, |t| t.count)
    }

    /// Messages seen in all: grows with every [`Self::add`], the only way a
    /// miner learns, so a change in it says the state needs saving.
    pub fn messages(&self) -> u64 {
        self.templates.iter().map(|t| t.count).sum()
    }

    /// How many templates there are.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Whether no message was added yet.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_masked_and_wording_kept() {
        assert_eq!(
            tokens("Received block blk_-160899 of size 67108864 from /10.250.10.6"),
            vec![
                "Received", "block", "<*>", "of", "size", "<*>", "from", "<*>"
            ]
        );
        assert_eq!(
            tokens("user=root uid=0"),
            vec!["user=", "root", "uid=", "<*>"]
        );
        assert_eq!(tokens("host.example:8080 up"), vec!["<*>", "up"]);
        assert_eq!(tokens("/a?b=c"), vec!["/a?b=c"]);
        assert_eq!(
            tokens("1190 bytes (1.16 KB) sent"),
            vec!["<*>", "bytes", "<*>", "sent"]
        );
        assert_eq!(tokens("(see below) ok"), vec!["(see", "below)", "ok"]);
        assert_eq!(
            tokens("session deadbeefcafe opened"),
            vec!["session", "<*>", "opened"]
        );
        assert!(tokens("").is_empty());
        assert_eq!(
            tokens("from () at Fri Jul 1"),
            vec!["from", "<*>", "at", "<*>", "<*>", "<*>"]
        );
    }

    #[test]
    fn messages_of_one_template_share_an_id_that_stays() {
        let mut m = TemplateMiner::default();
        let a = m.add("Connection from 10.0.0.1 closed by the peer");
        let b = m.add("Connection from 10.0.0.2 closed by the peer");
        let c = m.add("Disk full on /dev/sda1");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(m.template(a), "Connection from <*> closed by the peer");
        // Generalising a template keeps its id.
        let d = m.add("Connection from gateway closed by the peer");
        assert_eq!(d, a);
        assert_eq!(m.template(a), "Connection from <*> closed by the peer");
        assert_eq!(m.count(a), 3);
        assert_eq!(m.len(), 2);
        // An optional variable part: same constants, same event.
        let e = m.add("sent 1190 bytes (1.16 KB) to peer");
        let f = m.add("sent 0 bytes to peer");
        assert_eq!(e, f);
    }

    #[test]
    fn a_settled_constant_is_not_overwritten_by_one_odd_message() {
        let mut m = TemplateMiner::default();
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(m.add(&format!("Session {i} initialized by client Agent")));
        }
        let odd = m.add("Session 99 initialized by client SPP");
        assert!(ids.iter().all(|id| *id == ids[0]));
        assert_ne!(odd, ids[0], "another event");
        assert_eq!(
            m.template(ids[0]),
            "Session <*> initialized by client Agent"
        );
    }

    #[test]
    fn template_ids_survive_a_save_and_restore() {
        let mut m = TemplateMiner::default();
        let lines = [
            "Accepted password for root from 10.0.0.1 port 22 ssh2",
            "Disk /dev/sda1 is 91% full",
            "Accepted password for root from 10.0.0.2 port 2222 ssh2",
            "worker 3 finished job 17 in 12 ms",
        ];
        let before: Vec<_> = lines.iter().map(|l| m.add(l)).collect();
        let saved = serde_json::to_string(&m.state()).expect("save");
        let mut again = TemplateMiner::restore(serde_json::from_str(&saved).expect("load"));
        assert_eq!(again.len(), m.len());
        for (l, id) in lines.iter().zip(&before) {
            assert_eq!(again.add(l), *id, "{l}");
            assert_eq!(again.template(*id), m.template(*id));
        }
        let new = again.add("Cache warmed in 3 s");
        assert_eq!(new as usize, m.len(), "new templates get new ids");
    }

    #[test]
    fn odd_input_does_not_panic() {
        let mut m = TemplateMiner::default();
        for line in ["", " ", "=", "a=", "=b", "::::", "é ü 😀", "\t\t", "x y z"] {
            let id = m.add(line);
            let _ = m.template(id);
        }
        assert!(!m.is_empty());
        assert_eq!(m.messages(), 9, "every message counts, odd ones too");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text: no panic, the same message again gets the same id,
        /// and the template has as many tokens as the message (or fewer,
        /// for a message that joined by its constants).
        #[test]
        fn any_message_gets_a_stable_id(lines in proptest::collection::vec("\\PC{0,60}", 1..40)) {
            let mut m = TemplateMiner::default();
            for l in &lines {
                let id = m.add(l);
                prop_assert_eq!(m.add(l), id);
                prop_assert!(m.count(id) >= 2);
                let _ = m.template(id);
            }
            prop_assert!(m.len() <= lines.len());
        }
    }
}
