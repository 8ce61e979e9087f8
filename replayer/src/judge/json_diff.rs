//! Structural comparison of two JSON values under the rules (ignored paths, matchers, tolerances): each difference
//! a [`FieldDiff`](super::diff::FieldDiff) named by its JSON path. Used for JSON bodies ([`super::compare`]) and for
//! gRPC messages decoded as protobuf or JSON ([`super::grpc`]).

use serde_json::Value;

use super::diff::{DiffKind, Out, short};
use super::jsonpath::{Elem, render};
use super::rules::{Check, Effective};

fn render_value(v: &Value) -> String {
    short(&v.to_string())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(super) fn compare_json(
    path: &mut Vec<Elem>,
    r: Option<&Value>,
    l: Option<&Value>,
    rules: &Effective,
    out: &mut Out,
) {
    if rules.ignored(path) {
        return;
    }
    if let Some(m) = rules.matcher(path) {
        check(path, &m.check, r, l, out);
        return;
    }
    let (r, l) = match (r, l) {
        (None, None) => return,
        (Some(r), None) => {
            out.push(render(path), DiffKind::Missing, Some(render_value(r)), None);
            return;
        }
        (None, Some(l)) => {
            out.push(render(path), DiffKind::Added, None, Some(render_value(l)));
            return;
        }
        (Some(r), Some(l)) => (r, l),
    };
    match (r, l) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                path.push(Elem::Key(k.clone()));
                compare_json(path, Some(v), b.get(k), rules, out);
                path.pop();
            }
            for (k, v) in b {
                if !a.contains_key(k) {
                    path.push(Elem::Key(k.clone()));
                    compare_json(path, None, Some(v), rules, out);
                    path.pop();
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                path.push(Elem::Index(i));
                compare_json(path, a.get(i), b.get(i), rules, out);
                path.pop();
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let same = a == b
                || match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => (x - y).abs() <= rules.numeric_tolerance,
                    _ => false,
                };
            if !same {
                out.push(render(path), DiffKind::Changed, Some(a.to_string()), Some(b.to_string()));
            }
        }
        (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
            out.push(
                render(path),
                DiffKind::Type,
                Some(format!("{} {}", type_name(a), render_value(a))),
                Some(format!("{} {}", type_name(b), render_value(b))),
            );
        }
        (a, b) => {
            if a != b {
                out.push(render(path), DiffKind::Changed, Some(render_value(a)), Some(render_value(b)));
            }
        }
    }
}

fn check(path: &[Elem], c: &Check, r: Option<&Value>, l: Option<&Value>, out: &mut Out) {
    let Some(lv) = l else {
        if r.is_some() {
            out.push(render(path), DiffKind::Missing, r.map(render_value), None);
        }
        return;
    };
    match c {
        Check::Present => {}
        Check::Regex(re) => {
            let text = match lv {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !re.is_match(&text) {
                out.push(render(path), DiffKind::NoMatch, Some(format!("/{}/", re.as_str())), Some(render_value(lv)));
            }
        }
        Check::Tolerance(t) | Check::Relative(t) => {
            let Some(rv) = r else {
                out.push(render(path), DiffKind::Added, None, Some(render_value(lv)));
                return;
            };
            let ok = match (rv.as_f64(), lv.as_f64()) {
                (Some(a), Some(b)) => {
                    let allowed = if matches!(c, Check::Relative(_)) { t * a.abs() } else { *t };
                    (a - b).abs() <= allowed
                }
                _ => rv == lv,
            };
            if !ok {
                out.push(render(path), DiffKind::Changed, Some(render_value(rv)), Some(render_value(lv)));
            }
        }
    }
}
