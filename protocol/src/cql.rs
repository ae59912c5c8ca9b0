//! CQL, the Contextual Query Language of SRU (searchRetrieve: Part 5), parsed into a tree
//! and written as XCQL.
//!
//! The grammar is the one YAZ's parser accepts (so that queries cataloguers type into
//! `yaz-client` and `zoomsh` mean the same here), with its two relaxations of the
//! specification: several unquoted terms in one clause (`a b` is one clause of two terms),
//! and the words `and`, `or`, `not`, `prox`, `sortby` taken as terms where no boolean or
//! sort can stand. `all`, `any` and any word with a dot are relations when one can stand
//! after an index (`title any fish`); otherwise they are terms too.
//!
//! ```text
//! query    := '>' term ['=' term] query | scoped
//! scoped   := clause (boolean modifiers clause)*
//! clause   := '(' query ')' | term relation modifiers clause | term term*
//! modifiers:= ('/' term [comparison term])*
//! sortby   := 'sortby' (term modifiers)+
//! ```
//!
//! No CQL crate for Rust exists (the `cql2` crate is OGC's unrelated Common Query
//! Language), hence this one.

use std::fmt::Write;

/// The index of a clause that names none.
pub const SERVER_CHOICE: &str = "cql.serverChoice";

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The search.
    pub root: Node,
    /// `sortby` keys, in order.
    pub sort: Vec<SortKey>,
}

/// A node of the search tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// `index relation term`.
    Clause(Clause),
    /// `left boolean right`.
    Triple(Box<Triple>),
}

/// A search clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// The index (its context set prefix removed when a `>` prefix resolved it).
    pub index: String,
    /// The context set's identifier, when a `>` prefix resolved the index.
    pub index_set: Option<String>,
    /// The relation.
    pub relation: Relation,
    /// The term, and any further unquoted terms after it (YAZ's extension: all of them
    /// must match).
    pub terms: Vec<String>,
}

/// A relation with its modifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// `=`, `==`, `<>`, `<`, `>`, `<=`, `>=`, `any`, `all`, `adj`, `within`, ...
    pub value: String,
    /// Modifiers, in the query's order.
    pub modifiers: Vec<Modifier>,
}

/// `/name` or `/name comparison value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Modifier {
    /// The modifier's name.
    pub name: String,
    /// Its comparison and value, if given.
    pub value: Option<(String, String)>,
}

/// A boolean combination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Triple {
    /// `and`, `or`, `not` or `prox`.
    pub boolean: String,
    /// Modifiers of the boolean (`prox/distance<3`), in the query's order.
    pub modifiers: Vec<Modifier>,
    /// Left operand.
    pub left: Node,
    /// Right operand.
    pub right: Node,
}

/// A `sortby` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// The index sorted on.
    pub index: String,
    /// Its modifiers (`/ascending`, `/missingValue=...`), in the query's order.
    pub modifiers: Vec<Modifier>,
}

/// Why a query is not CQL, and where (a character offset into the query).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CQL syntax error at character {position}: {reason}")]
pub struct CqlError {
    /// Character offset (0-based) of the token where parsing failed.
    pub position: usize,
    /// What was expected.
    pub reason: String,
    /// Which rule the query broke: the grammar or one of the limits.
    pub kind: CqlErrorKind,
}

/// What kind of refusal a [`CqlError`] is (SRU answers each with its own diagnostic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CqlErrorKind {
    /// Not CQL.
    Syntax,
    /// Longer than [`QUERY_CHARS_MAX`].
    TooLong,
    /// More than [`TERMS_MAX`] search terms.
    TooManyTerms,
    /// Nested deeper than [`DEPTH_MAX`].
    TooDeep,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Slash,
    /// `=`, `==`, `<`, `>`, `<=`, `>=`, `<>`.
    Comparison(&'static str),
    /// A word or quoted string (never a keyword).
    Term(String),
    /// `all`, `any`, or a word with a dot: a relation where one can stand.
    RelationLike(String),
    /// `and`, `or`, `not`, `prox` (lower case).
    Boolean(&'static str),
    SortBy,
}

fn tokens(query: &str) -> Result<Vec<(Token, usize)>, CqlError> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let next = chars.get(i + 1).copied();
        let token = match c {
            '(' => Token::Open,
            ')' => Token::Close,
            '/' => Token::Slash,
            '=' if next == Some('=') => Token::Comparison("=="),
            '=' => Token::Comparison("="),
            '>' if next == Some('=') => Token::Comparison(">="),
            '>' => Token::Comparison(">"),
            '<' if next == Some('=') => Token::Comparison("<="),
            '<' if next == Some('>') => Token::Comparison("<>"),
            '<' => Token::Comparison("<"),
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(CqlError {
                                kind: CqlErrorKind::Syntax,
                                position: start,
                                reason: "a quoted term is not closed (a \" is missing)".into(),
                            })
                        }
                        Some('"') => break,
                        // A backslash escapes the next character; both are kept (the
                        // term's masking rules read them).
                        Some('\\') => {
                            text.push('\\');
                            if let Some(escaped) = chars.get(i + 1) {
                                text.push(*escaped);
                                i += 1;
                            }
                        }
                        Some(other) => text.push(*other),
                    }
                    i += 1;
                }
                out.push((Token::Term(text), start));
                i += 1;
                continue;
            }
            _ => {
                let mut text = String::new();
                while let Some(&c) = chars.get(i) {
                    if c.is_whitespace() || "()=<>/".contains(c) {
                        break;
                    }
                    text.push(c);
                    if c == '\\' {
                        if let Some(escaped) = chars.get(i + 1) {
                            text.push(*escaped);
                            i += 1;
                        }
                    }
                    i += 1;
                }
                let lower = text.to_lowercase();
                let token = match lower.as_str() {
                    "and" => Token::Boolean("and"),
                    "or" => Token::Boolean("or"),
                    "not" => Token::Boolean("not"),
                    "prox" => Token::Boolean("prox"),
                    "sortby" => Token::SortBy,
                    "all" | "any" | "adj" => Token::RelationLike(text),
                    _ if text.contains('.') => Token::RelationLike(text),
                    _ => Token::Term(text),
                };
                out.push((token, start));
                continue;
            }
        };
        i += match &token {
            Token::Comparison(op) => op.len(),
            _ => 1,
        };
        out.push((token, start));
    }
    Ok(out)
}

/// The index and relation a clause inherits (`title = (a or b)`: both are titles).
#[derive(Clone)]
struct Context {
    index: String,
    relation: Relation,
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    end: usize,
    /// Nesting depth, bounded: a query is input from anyone.
    depth: usize,
    /// Search terms read so far, bounded for the same reason: each boolean nests the
    /// tree one level deeper, and every consumer of the tree walks it.
    term_count: usize,
}

/// Deepest nesting of parentheses, prefixes and relations accepted.
pub const DEPTH_MAX: usize = 64;

/// Most search terms in one query (so at most one boolean fewer). YAZ's own limit
/// is the query's length; a tree per term is what this bounds.
pub const TERMS_MAX: usize = 256;

/// Longest query accepted, in characters: 256 terms of 30 letters.
pub const QUERY_CHARS_MAX: usize = 8 * 1024;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    fn error(&self, reason: &str) -> CqlError {
        self.error_of(CqlErrorKind::Syntax, reason)
    }

    fn error_of(&self, kind: CqlErrorKind, reason: &str) -> CqlError {
        let position = self.tokens.get(self.at).map_or(self.end, |(_, p)| *p);
        let found = match self.peek() {
            None => "the end of the query".to_string(),
            Some(token) => describe(token),
        };
        CqlError {
            position,
            reason: format!("expected {reason}, found {found}"),
            kind,
        }
    }

    /// A token that can be a term: a word, a quoted string, or a keyword.
    fn term(&mut self) -> Option<String> {
        let text = match self.peek()? {
            Token::Term(t) | Token::RelationLike(t) => t.clone(),
            Token::Boolean(b) => (*b).to_string(),
            Token::SortBy => "sortby".to_string(),
            _ => return None,
        };
        self.at += 1;
        Some(text)
    }

    fn counted(&mut self, count: usize) -> Result<(), CqlError> {
        self.term_count += count;
        if self.term_count > TERMS_MAX {
            return Err(self.error_of(
                CqlErrorKind::TooManyTerms,
                &format!("at most {TERMS_MAX} search terms"),
            ));
        }
        Ok(())
    }

    fn deeper(&mut self) -> Result<(), CqlError> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(self.error_of(
                CqlErrorKind::TooDeep,
                &format!("at most {DEPTH_MAX} levels of nesting"),
            ));
        }
        Ok(())
    }

    fn query(&mut self, context: &Context) -> Result<Node, CqlError> {
        if self.peek() != Some(&Token::Comparison(">")) {
            return self.scoped(context);
        }
        self.deeper()?;
        self.at += 1;
        let first = self
            .term()
            .ok_or_else(|| self.error("a context set's name or identifier after '>'"))?;
        let (name, identifier) = if self.peek() == Some(&Token::Comparison("=")) {
            self.at += 1;
            let identifier = self
                .term()
                .ok_or_else(|| self.error("a context set's identifier after '='"))?;
            (Some(first), identifier)
        } else {
            (None, first)
        };
        let mut node = self.query(context)?;
        apply_prefix(&mut node, name.as_deref(), &identifier);
        self.depth -= 1;
        Ok(node)
    }

    fn scoped(&mut self, context: &Context) -> Result<Node, CqlError> {
        let mut left = self.clause(context)?;
        while let Some(Token::Boolean(boolean)) = self.peek() {
            let boolean = (*boolean).to_string();
            self.at += 1;
            let modifiers = self.modifiers()?;
            let right = self.clause(context)?;
            left = Node::Triple(Box::new(Triple {
                boolean,
                modifiers,
                left,
                right,
            }));
        }
        Ok(left)
    }

    fn clause(&mut self, context: &Context) -> Result<Node, CqlError> {
        if self.peek() == Some(&Token::Open) {
            self.deeper()?;
            self.at += 1;
            let node = self.query(context)?;
            if self.peek() != Some(&Token::Close) {
                return Err(self.error("')'"));
            }
            self.at += 1;
            self.depth -= 1;
            return Ok(node);
        }
        let Some(first) = self.term() else {
            return Err(self.error("a search term or '('"));
        };
        let relation = match self.peek() {
            Some(Token::Comparison(op)) => Some((*op).to_string()),
            Some(Token::RelationLike(word)) => Some(word.clone()),
            _ => None,
        };
        if let Some(value) = relation {
            // `index relation modifiers clause`: the clause after takes this index.
            self.at += 1;
            let modifiers = self.modifiers()?;
            self.deeper()?;
            let node = self.clause(&Context {
                index: first,
                relation: Relation { value, modifiers },
            })?;
            self.depth -= 1;
            return Ok(node);
        }
        let mut terms = vec![first];
        self.counted(1)?;
        while let Some(Token::Term(more)) = self.peek() {
            terms.push(more.clone());
            self.counted(1)?;
            self.at += 1;
        }
        Ok(Node::Clause(Clause {
            index: context.index.clone(),
            index_set: None,
            relation: context.relation.clone(),
            terms,
        }))
    }

    fn modifiers(&mut self) -> Result<Vec<Modifier>, CqlError> {
        let mut out = Vec::new();
        while self.peek() == Some(&Token::Slash) {
            self.at += 1;
            let name = self
                .term()
                .ok_or_else(|| self.error("a modifier's name after '/'"))?;
            let value = match self.peek() {
                Some(Token::Comparison(op)) => {
                    let op = (*op).to_string();
                    self.at += 1;
                    let value = self
                        .term()
                        .ok_or_else(|| self.error("a modifier's value"))?;
                    Some((op, value))
                }
                _ => None,
            };
            out.push(Modifier { name, value });
        }
        Ok(out)
    }

    fn sort_keys(&mut self) -> Result<Vec<SortKey>, CqlError> {
        if self.peek() != Some(&Token::SortBy) {
            return Ok(Vec::new());
        }
        self.at += 1;
        let mut keys = Vec::new();
        loop {
            let Some(index) = self.term() else {
                if keys.is_empty() {
                    return Err(self.error("an index to sort by after 'sortby'"));
                }
                return Ok(keys);
            };
            let modifiers = self.modifiers()?;
            keys.push(SortKey { index, modifiers });
        }
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::Slash => "'/'".into(),
        Token::Comparison(op) => format!("'{op}'"),
        Token::Term(t) | Token::RelationLike(t) => format!("\"{t}\""),
        Token::Boolean(b) => format!("'{b}'"),
        Token::SortBy => "'sortby'".into(),
    }
}

/// Resolves the indexes a `>` prefix names: `prefix.index` loses its prefix and takes
/// the context set's identifier; with no name, an index without a dot takes it. An
/// index already resolved (by a prefix nearer to it) keeps its own.
fn apply_prefix(node: &mut Node, name: Option<&str>, identifier: &str) {
    match node {
        Node::Clause(clause) => {
            if clause.index_set.is_some() {
                return;
            }
            match (name, clause.index.split_once('.')) {
                (Some(name), Some((prefix, rest))) if prefix == name => {
                    clause.index = rest.to_string();
                    clause.index_set = Some(identifier.to_string());
                }
                (None, None) => clause.index_set = Some(identifier.to_string()),
                _ => {}
            }
        }
        Node::Triple(triple) => {
            apply_prefix(&mut triple.left, name, identifier);
            apply_prefix(&mut triple.right, name, identifier);
        }
    }
}

/// Parses a CQL query.
pub fn parse(query: &str) -> Result<Query, CqlError> {
    if query.len() > QUERY_CHARS_MAX {
        return Err(CqlError {
            position: QUERY_CHARS_MAX,
            reason: format!("a query of at most {QUERY_CHARS_MAX} characters"),
            kind: CqlErrorKind::TooLong,
        });
    }
    let tokens = tokens(query)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        end: query.chars().count(),
        depth: 0,
        term_count: 0,
    };
    let context = Context {
        index: SERVER_CHOICE.to_string(),
        relation: Relation {
            value: "=".to_string(),
            modifiers: Vec::new(),
        },
    };
    let root = parser.query(&context)?;
    let sort = parser.sort_keys()?;
    if parser.peek().is_some() {
        return Err(parser.error("a boolean (and, or, not, prox), 'sortby' or the end"));
    }
    Ok(Query { root, sort })
}

impl Query {
    /// The query as XCQL, laid out as YAZ's `cql2xcql` writes it.
    pub fn to_xcql(&self) -> String {
        let mut out = String::new();
        write_node(&mut out, &self.root, 0, &self.sort);
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn line(out: &mut String, level: usize, text: &str) {
    let _ = writeln!(out, "{:width$}{text}", "", width = level * 2);
}

fn write_modifiers(out: &mut String, modifiers: &[Modifier], level: usize) {
    if modifiers.is_empty() {
        return;
    }
    line(out, level, "<modifiers>");
    // YAZ lists them last first.
    for modifier in modifiers.iter().rev() {
        line(out, level + 1, "<modifier>");
        line(
            out,
            level + 2,
            &format!("<type>{}</type>", escape(&modifier.name)),
        );
        if let Some((comparison, value)) = &modifier.value {
            line(
                out,
                level + 2,
                &format!("<comparison>{}</comparison>", escape(comparison)),
            );
            line(out, level + 2, &format!("<value>{}</value>", escape(value)));
        }
        line(out, level + 1, "</modifier>");
    }
    line(out, level, "</modifiers>");
}

fn write_sort(out: &mut String, sort: &[SortKey], level: usize) {
    if sort.is_empty() {
        return;
    }
    line(out, level, "<sortKeys>");
    for key in sort {
        line(out, level + 1, "<key>");
        line(
            out,
            level + 2,
            &format!("<index>{}</index>", escape(&key.index)),
        );
        write_modifiers(out, &key.modifiers, level + 3);
        line(out, level + 1, "</key>");
    }
    line(out, level, "</sortKeys>");
}

fn write_node(out: &mut String, node: &Node, level: usize, sort: &[SortKey]) {
    match node {
        Node::Clause(clause) => {
            line(out, level, "<searchClause>");
            if let Some(set) = &clause.index_set {
                line(out, level + 1, "<prefixes>");
                line(out, level + 2, "<prefix>");
                line(
                    out,
                    level + 3,
                    &format!("<identifier>{}</identifier>", escape(set)),
                );
                line(out, level + 2, "</prefix>");
                line(out, level + 1, "</prefixes>");
            }
            line(
                out,
                level + 1,
                &format!("<index>{}</index>", escape(&clause.index)),
            );
            line(out, level + 1, "<relation>");
            line(
                out,
                level + 2,
                &format!("<value>{}</value>", escape(&clause.relation.value)),
            );
            write_modifiers(out, &clause.relation.modifiers, level + 2);
            line(out, level + 1, "</relation>");
            for term in &clause.terms {
                line(out, level + 1, &format!("<term>{}</term>", escape(term)));
            }
            write_sort(out, sort, level + 1);
            line(out, level, "</searchClause>");
        }
        Node::Triple(triple) => {
            line(out, level, "<triple>");
            line(out, level + 1, "<boolean>");
            line(
                out,
                level + 2,
                &format!("<value>{}</value>", escape(&triple.boolean)),
            );
            write_modifiers(out, &triple.modifiers, level + 2);
            line(out, level + 1, "</boolean>");
            line(out, level + 1, "<leftOperand>");
            write_node(out, &triple.left, level + 2, &[]);
            line(out, level + 1, "</leftOperand>");
            line(out, level + 1, "<rightOperand>");
            write_node(out, &triple.right, level + 2, &[]);
            line(out, level + 1, "</rightOperand>");
            write_sort(out, sort, level + 1);
            line(out, level, "</triple>");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_where() {
        let error = parse("title any").expect_err("no term");
        assert_eq!(error.position, 9);
        assert!(error.reason.contains("the end of the query"), "{error}");
        let error = parse("a b.c").expect_err("relation without term");
        assert_eq!(error.position, 5);
        let error = parse("(a or b").expect_err("open parenthesis");
        assert!(error.reason.contains("')'"), "{error}");
        assert_eq!(
            parse("\"open").expect_err("open quote").position,
            0,
            "an unclosed quote is refused where it starts"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}a{}", "(".repeat(3_000), ")".repeat(3_000));
        let error = parse(&deep).expect_err("too deep");
        assert_eq!(error.kind, CqlErrorKind::TooDeep, "{error}");
        let deep = "title = ".repeat(10_000) + "x";
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn long_boolean_chains_are_refused_by_count() {
        let chain = |n: usize| vec!["sejarah"; n].join(" or ");
        assert!(parse(&chain(TERMS_MAX)).is_ok());
        let error = parse(&chain(TERMS_MAX + 1)).expect_err("one term too many");
        assert_eq!(error.kind, CqlErrorKind::TooManyTerms, "{error}");
        // YAZ's several terms in one clause count one each.
        let error = parse(&vec!["a"; TERMS_MAX + 1].join(" ")).expect_err("too many terms");
        assert!(error.reason.contains("search terms"), "{error}");
        let error = parse(&chain(10_000)).expect_err("far too long");
        assert_eq!(error.kind, CqlErrorKind::TooLong, "{error}");
    }

    #[test]
    fn a_relation_context_reaches_into_parentheses() {
        let query = parse("dc.title any (fish or chips) and dc.creator = smith").expect("parses");
        let Node::Triple(and) = &query.root else {
            panic!("a triple")
        };
        let Node::Triple(or) = &and.left else {
            panic!("a triple")
        };
        for side in [&or.left, &or.right] {
            let Node::Clause(clause) = side else {
                panic!("a clause")
            };
            assert_eq!(clause.index, "dc.title");
            assert_eq!(clause.relation.value, "any");
        }
    }
}
