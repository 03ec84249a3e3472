//! Reading the CLI's JSON report (`memshim report --format json`): a site's frames and names.

use serde_json::Value;

pub fn frames(site: &Value) -> &Vec<Value> {
    site["frames"].as_array().unwrap()
}

/// Function names of a site, innermost first.
pub fn names(site: &Value) -> Vec<String> {
    frames(site)
        .iter()
        .map(|f| f["function"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The innermost Python frame of a site.
pub fn first_python(site: &Value) -> Option<&Value> {
    frames(site).iter().find(|f| f["kind"] == "python")
}

pub fn python_names(site: &Value) -> Vec<String> {
    frames(site)
        .iter()
        .filter(|f| f["kind"] == "python")
        .map(|f| f["function"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Sum of bytes of the sites of a ranking whose innermost Python frame is `func`.
pub fn bytes_in(ranking: &Value, func: &str) -> f64 {
    ranking
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| first_python(s).is_some_and(|f| f["function"] == func))
        .map(|s| s["bytes_est"].as_f64().unwrap())
        .sum()
}

pub fn within(est: f64, truth: f64, tol: f64) -> bool {
    (est / truth - 1.0).abs() <= tol
}

/// Which of the thread functions `workers` a sample was taken in (None: another thread's).
/// Fails when it carries frames of two of them: each sample holds its own thread's frames only.
pub fn worker_of(pn: &[String], workers: &[&str]) -> Option<usize> {
    let mine: Vec<usize> = (0..workers.len())
        .filter(|&k| pn.iter().any(|n| n == workers[k]))
        .collect();
    assert!(
        mine.len() <= 1,
        "frames of two threads in one sample: {pn:?}"
    );
    mine.first().copied()
}
