//! Log pattern mining: an online template miner in the family of Drain
//! (He et al., ICWS 2017), with one default configuration for all logs.
//!
//! Each message is split into tokens; tokens that carry data (anything
//! with a digit, hex strings, paths of ids) are masked to `<*>` first, which
//! is what lets one configuration serve many log formats. Messages are then
//! grouped by token count and first plain word, and within a group
//! joined to the most similar template above a similarity threshold, or
//! start a new one. When a message joins a template, the positions where
//! they differ become `<*>`, unless the template's constants are settled
//! (seen in many messages): then the message is another event. A position
//! of a group that held `variable_after` different words is a variable
//! (user names, cities: data without digits), and the group's templates
//! that differ only there merge under the oldest id ([`TemplateMiner::resolve`]
//! maps a merged id to it). Messages whose constant tokens match a
//! template's exactly but which hold more or fewer variables (`sent 0
//! bytes` / `sent 10 bytes (1.2 KB)`) join it.
//!
//! Template ids are given at creation and never change, even as the
//! template text generalises, so counts over time stay attached to one id
//! (or, after a merge, to the id it resolves to).
//!
//! The defaults were chosen leaving one system out at a time over loghub-2k
//! and the development systems of `benches/other_logs.py`
//! (`benches/choose_miner.py`), and are scored on held-out systems against
//! Drain: see `docs/benchmarks.md`.

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
    /// A position of a group (messages of one length and first word) that
    /// held this many different words is a variable (user names, cities,
    /// container names), however few messages agreed on each: templates
    /// that differ only there are one event and merge. Event words that
    /// come in pairs or triples (`start`/`over`, `In`/`Out`, `true`/`false`)
    /// stay apart.
    pub variable_after: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            similarity: 0.7,
            max_templates_per_group: 256,
            settle_after: 10,
            variable_after: 4,
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
    /// The template this one was merged into, once a position where they
    /// differ turned out to be a variable: its messages and new ones count
    /// there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<TemplateId>,
}

/// What a miner knows, to save and restore so template ids survive a
/// restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerState {
    /// The settings.
    pub config: MinerConfig,
    /// Every template, by id.
    pub templates: Vec<Template>,
    /// What each group learnt of its positions.
    #[serde(default)]
    pub groups: Vec<GroupState>,
}

/// The positions of one group (messages of one length and first constant
/// word), as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// Token count.
    pub len: usize,
    /// First constant word.
    pub first: Box<str>,
    /// Per position, the different words seen (up to `variable_after`).
    pub words: Vec<Vec<Box<str>>>,
    /// Per position, whether it is a variable.
    pub variable: Vec<bool>,
}

/// Templates of one length and first constant word, and what their
/// positions hold.
#[derive(Debug, Default)]
struct Group {
    ids: Vec<TemplateId>,
    words: Vec<Vec<Box<str>>>,
    variable: Vec<bool>,
}

impl Group {
    fn new(len: usize) -> Self {
        Self {
            ids: Vec::new(),
            words: vec![Vec::new(); len],
            variable: vec![false; len],
        }
    }

    /// Notes the words of a message; whether a position became a variable.
    fn learn(&mut self, toks: &[&str], limit: usize) -> bool {
        let mut changed = false;
        for (i, t) in toks.iter().enumerate() {
            if *t == WILDCARD || self.variable[i] {
                continue;
            }
            let seen = &mut self.words[i];
            if !seen.iter().any(|w| &**w == *t) {
                seen.push(Box::from(*t));
                if seen.len() >= limit {
                    self.variable[i] = true;
                    seen.clear();
                    changed = true;
                }
            }
        }
        changed
    }
}

/// The miner: feed it messages one at a time.
#[derive(Debug, Default)]
pub struct TemplateMiner {
    config: MinerConfig,
    templates: Vec<Template>,
    groups: HashMap<(usize, Box<str>), Group>,
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

/// After a position of `group` turned out to be a variable: templates
/// that differ only at variable positions become one, under the oldest id.
fn merge_alike(templates: &mut [Template], group: &mut Group) {
    let masked = |t: &Template| -> Vec<Box<str>> {
        t.tokens
            .iter()
            .zip(&group.variable)
            .map(|(a, var)| if *var { WILDCARD.into() } else { a.clone() })
            .collect()
    };
    let mut kept: Vec<(Vec<Box<str>>, TemplateId)> = Vec::new();
    let mut ids = Vec::with_capacity(group.ids.len());
    for &id in &group.ids {
        let m = masked(&templates[id as usize]);
        let into = kept.iter().find(|(k, _)| *k == m);
        match into {
            Some(&(_, head)) => {
                let count = std::mem::take(&mut templates[id as usize].count);
                let other = templates[id as usize].tokens.clone();
                templates[id as usize].merged_into = Some(head);
                let h = &mut templates[head as usize];
                h.count += count;
                for (a, b) in h.tokens.iter_mut().zip(&other) {
                    if a != b {
                        *a = WILDCARD.into();
                    }
                }
            }
            None => {
                kept.push((m, id));
                ids.push(id);
            }
        }
    }
    for (_, head) in kept {
        let t = &mut templates[head as usize];
        for (a, var) in t.tokens.iter_mut().zip(&group.variable) {
            if *var {
                *a = WILDCARD.into();
            }
        }
    }
    group.ids = ids;
}

/// The word that, with its length, names a message's group: the first
/// plain word (letters, maybe ending in `:`, `,`, `.` or `;`). Names in
/// brackets, quotes or with dashes (`[orders]`, `"api"`, `http-in`) come
/// first in many formats and are as often variables as wording, so they
/// are compared like any other position instead of splitting the groups.
/// Without a plain word, the first constant token.
fn first_word<'a>(toks: &[&'a str]) -> &'a str {
    let plain = |t: &&&str| {
        let core = t.trim_end_matches([':', ',', '.', ';']);
        !core.is_empty() && core.chars().all(char::is_alphabetic)
    };
    toks.iter()
        .find(plain)
        .or_else(|| toks.iter().find(|t| **t != WILDCARD))
        .copied()
        .unwrap_or(WILDCARD)
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
        let mut groups: Vec<GroupState> = self
            .groups
            .iter()
            .map(|((len, first), g)| GroupState {
                len: *len,
                first: first.clone(),
                words: g.words.clone(),
                variable: g.variable.clone(),
            })
            .collect();
        groups.sort_by(|a, b| (a.len, &a.first).cmp(&(b.len, &b.first)));
        MinerState {
            config: self.config.clone(),
            templates: self.templates.clone(),
            groups,
        }
    }

    /// A miner that goes on from a saved state: the same templates under
    /// the same ids.
    pub fn restore(state: MinerState) -> Self {
        let mut m = Self::new(state.config);
        for (id, t) in state.templates.into_iter().enumerate() {
            let toks: Vec<&str> = t.tokens.iter().map(|t| &**t).collect();
            if t.merged_into.is_none() {
                m.groups
                    .entry((toks.len(), Box::from(first_word(&toks))))
                    .or_insert_with(|| Group::new(toks.len()))
                    .ids
                    .push(id as TemplateId);
            }
            m.skeletons
                .entry(skeleton(&toks))
                .or_insert(id as TemplateId);
            m.templates.push(t);
        }
        for g in state.groups {
            if g.words.len() != g.len || g.variable.len() != g.len {
                continue;
            }
            let group = m
                .groups
                .entry((g.len, g.first))
                .or_insert_with(|| Group::new(g.len));
            group.words = g.words;
            group.variable = g.variable;
        }
        m
    }

    /// The template `id` counts under now: itself, or the one it was
    /// merged into.
    pub fn resolve(&self, mut id: TemplateId) -> TemplateId {
        while let Some(next) = self.templates.get(id as usize).and_then(|t| t.merged_into) {
            id = next;
        }
        id
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
            let id = self.resolve(id);
            self.templates[id as usize].count += 1;
            return id;
        }
        let key = (toks.len(), Box::<str>::from(first_word(&toks)));
        let group = self
            .groups
            .entry(key)
            .or_insert_with(|| Group::new(toks.len()));
        if group.learn(&toks, self.config.variable_after.max(2)) {
            merge_alike(&mut self.templates, group);
        }
        let mut best: Option<(f64, TemplateId)> = None;
        for &id in &group.ids {
            let t = &self.templates[id as usize];
            let same = t
                .tokens
                .iter()
                .zip(&toks)
                .zip(&group.variable)
                .filter(|((a, b), var)| &***a == **b || &***a == WILDCARD || **var)
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
            Some((_, id)) if group.ids.len() >= self.config.max_templates_per_group => Some(id),
            Some((sim, id)) if sim >= self.config.similarity => {
                // A constant that many messages agreed on is wording: a
                // message that differs there is another event.
                let t = &self.templates[id as usize];
                let flips = t
                    .tokens
                    .iter()
                    .zip(&toks)
                    .zip(&group.variable)
                    .any(|((a, b), var)| !var && &**a != WILDCARD && &**a != *b);
                (t.count < self.config.settle_after || !flips).then_some(id)
            }
            _ => None,
        };
        let id = match joined {
            Some(id) => {
                let t = &mut self.templates[id as usize];
                for ((a, b), var) in t.tokens.iter_mut().zip(&toks).zip(&group.variable) {
                    if (&**a != *b || *var) && &**a != WILDCARD {
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
                    merged_into: None,
                });
                group.ids.push(id);
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
            .get(self.resolve(id) as usize)
            .map(|t| t.tokens.join(" "))
            .unwrap_or_default()
    }

    /// Messages seen per template (a merged template's count under the
    /// one it was merged into).
    pub fn count(&self, id: TemplateId) -> u64 {
        self.templates
            .get(self.resolve(id) as usize)
            .map_or(0, |t| t.count)
    }

    /// Messages seen in all: grows with every [`Self::add`], the only way a
    /// miner learns, so a change in it says the state needs saving.
    pub fn messages(&self) -> u64 {
        self.templates.iter().map(|t| t.count).sum()
    }

    /// How many templates there are (merged ones not counted).
    pub fn len(&self) -> usize {
        self.templates
            .iter()
            .filter(|t| t.merged_into.is_none())
            .count()
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
    fn a_position_of_many_words_is_a_variable_and_its_templates_merge() {
        let mut m = TemplateMiner::default();
        let names = ["alice", "bob", "carol", "dave", "erin", "frank"];
        let cities = ["Oslo", "Lima", "Pune", "Perth", "Quito", "Lagos"];
        let ids: Vec<_> = names
            .iter()
            .zip(cities.iter().cycle().skip(2))
            .map(|(n, c)| m.add(&format!("User {n} logged in from {c}")))
            .collect();
        let first = m.resolve(ids[0]);
        assert!(
            ids.iter().all(|id| m.resolve(*id) == first),
            "one event: {ids:?}"
        );
        assert_eq!(m.template(ids[1]), "User <*> logged in from <*>");
        assert_eq!(m.count(first), 6);
        assert_eq!(m.messages(), 6, "merging moves counts, never doubles them");
        assert_eq!(m.len(), 1);
        // New messages go straight to the merged template.
        assert_eq!(m.add("User zed logged in from Rome"), first);
    }

    #[test]
    fn event_words_that_come_in_pairs_stay_apart() {
        // Short messages that differ in one word are below the similarity
        // threshold; two or three words at a position are not a variable,
        // so they never merge, however often they come.
        let mut m = TemplateMiner::default();
        let mut seen: HashMap<&str, Vec<TemplateId>> = HashMap::new();
        for i in 0..60 {
            let phase = ["start", "over", "abort"][i % 3];
            seen.entry(phase)
                .or_default()
                .push(m.add(&format!("layout pass {phase}")));
            let focus = if i % 2 == 0 { "gained" } else { "lost" };
            seen.entry(focus)
                .or_default()
                .push(m.add(&format!("window focus {focus}")));
        }
        let heads: Vec<TemplateId> = seen
            .values()
            .map(|ids| {
                let head = m.resolve(ids[0]);
                assert!(ids.iter().all(|id| m.resolve(*id) == head));
                head
            })
            .collect();
        let distinct: std::collections::HashSet<_> = heads.iter().collect();
        assert_eq!(distinct.len(), 5, "five events: {heads:?}");
    }

    #[test]
    fn a_bracketed_name_in_front_does_not_split_an_event() {
        let mut m = TemplateMiner::default();
        let ids: Vec<_> = ["orders", "users", "carts", "events", "audit", "clicks"]
            .iter()
            .map(|i| m.add(&format!("[node-a] [{i}] creating index, shards [1]/[1]")))
            .collect();
        let first = m.resolve(ids[0]);
        assert!(ids.iter().all(|id| m.resolve(*id) == first), "{ids:?}");
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
        let mut before: Vec<_> = lines.iter().map(|l| m.add(l)).collect();
        // A merge and what the group learnt of its positions are saved too.
        for (name, city) in [
            ("ann", "Oslo"),
            ("ben", "Lima"),
            ("cat", "Pune"),
            ("dan", "Rome"),
        ] {
            before.push(m.add(&format!("User {name} logged in from {city}")));
        }
        let merged = before[4];
        assert!(
            before[4..]
                .iter()
                .all(|id| m.resolve(*id) == m.resolve(merged))
        );
        let saved = serde_json::to_string(&m.state()).expect("save");
        let mut again = TemplateMiner::restore(serde_json::from_str(&saved).expect("load"));
        assert_eq!(again.len(), m.len());
        for (l, id) in lines.iter().zip(&before) {
            assert_eq!(again.add(l), *id, "{l}");
            assert_eq!(again.template(*id), m.template(*id));
        }
        assert_eq!(again.add("User fay logged in from Kyiv"), m.resolve(merged));
        assert_eq!(again.template(merged), "User <*> logged in from <*>");
        let new = again.add("Cache warmed in 3 s");
        assert!(!before.contains(&new), "new templates get new ids");
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
