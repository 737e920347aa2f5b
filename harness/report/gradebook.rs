//! The teacher's gradebook: a roster that maps submissions (folders, GitHub logins) to
//! students, the LMS imports made from it (Moodle's and Canvas's grade CSVs), and one
//! submission's result in the form GitHub Classroom's autograding reporter reads.

use super::cohort::Row;
use super::outcome::Status;
use super::rubric::Rubric;
use crate::sys::safe_text::csv_cell;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// One student of the roster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Student {
    /// The name the LMS shows.
    pub name: String,
    pub email: String,
    /// The LMS's id of the student (Moodle's "ID number", Canvas's user ID).
    pub lms_id: String,
    /// The institution's id (Canvas's SIS User ID).
    pub sis_id: String,
    pub section: String,
    /// The GitHub login (GitHub Classroom's roster: `github_username`).
    pub github: String,
    /// The folder of the submission, when the roster names it.
    pub folder: String,
    /// GitHub Classroom's `identifier` (often an e-mail or a student number).
    pub identifier: String,
}

impl Student {
    /// How well the submission `name` is this student's: 3 for its folder or identifier, 2
    /// for the GitHub login itself, 1 for a GitHub Classroom repository `<assignment>-<login>`
    /// (longer logins first: `hw-john-smith` is john-smith's, not smith's); 0 for none.
    fn owns(&self, name: &str) -> usize {
        let n = name.to_lowercase();
        let login = self.github.to_lowercase();
        if (!self.folder.is_empty() && self.folder == name)
            || (!self.identifier.is_empty() && self.identifier == name)
        {
            3 << 16
        } else if !login.is_empty() && n == login {
            2 << 16
        } else if !login.is_empty() && n.ends_with(&format!("-{login}")) {
            (1 << 16) + login.len()
        } else {
            0
        }
    }
}

/// The students of a course.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    pub students: Vec<Student>,
}

/// The column names a roster may use for each field (case and spaces ignored).
const COLUMNS: [(&str, &[&str]); 8] = [
    ("name", &["name", "full name", "student"]),
    ("email", &["email", "e-mail", "email address"]),
    (
        "lms_id",
        &["lms_id", "id number", "id", "canvas id", "moodle id"],
    ),
    ("sis_id", &["sis_id", "sis user id"]),
    ("section", &["section"]),
    ("github", &["github_username", "github", "login"]),
    ("folder", &["folder", "submission", "repository"]),
    ("identifier", &["identifier", "roster_identifier"]),
];

impl Roster {
    /// A roster CSV with a header row: GitHub Classroom's roster export (`identifier`,
    /// `github_username`, `github_id`, `name`) or the teacher's own columns (`name`, `email`,
    /// `lms_id`, `sis_id`, `section`, `github_username`, `folder`).
    pub fn load(file: &Path) -> Result<Roster> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the roster {}", file.display()))?;
        Roster::parse(&text).with_context(|| format!("the roster {}", file.display()))
    }

    pub fn parse(text: &str) -> Result<Roster> {
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header: Vec<String> = r
            .headers()?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_lowercase())
            .collect();
        let col = |field: &str| {
            let names = COLUMNS
                .iter()
                .find(|(f, _)| *f == field)
                .expect("a field")
                .1;
            header.iter().position(|h| names.contains(&h.as_str()))
        };
        if col("github").is_none() && col("folder").is_none() && col("identifier").is_none() {
            bail!("its header ({}) has no column naming a submission: github_username, folder or identifier", header.join(", "));
        }
        let mut students = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("line {}", i + 2))?;
            let get = |field: &str| {
                col(field)
                    .and_then(|c| rec.get(c))
                    .unwrap_or_default()
                    .to_string()
            };
            students.push(Student {
                name: get("name"),
                email: get("email"),
                lms_id: get("lms_id"),
                sis_id: get("sis_id"),
                section: get("section"),
                github: get("github"),
                folder: get("folder"),
                identifier: get("identifier"),
            });
        }
        Ok(Roster { students })
    }

    /// Each row with its student (None: no roster entry), and the students without a row.
    pub fn matched<'a>(&'a self, rows: &'a [Row]) -> Matched<'a> {
        // Each submission to the student who owns it best (the first such in the roster).
        let owner = |r: &Row| {
            self.students
                .iter()
                .map(|s| (s.owns(&r.name), s))
                .filter(|(how, _)| *how > 0)
                .fold(
                    None,
                    |best: Option<(usize, &Student)>, (how, s)| match best {
                        Some((b, _)) if b >= how => best,
                        _ => Some((how, s)),
                    },
                )
                .map(|(_, s)| s)
        };
        let pairs: Vec<(&Row, Option<&Student>)> = rows.iter().map(|r| (r, owner(r))).collect();
        let missing = self
            .students
            .iter()
            .filter(|s| {
                !pairs
                    .iter()
                    .any(|(_, o)| o.is_some_and(|o| std::ptr::eq(o, *s)))
            })
            .collect();
        Matched { pairs, missing }
    }
}

pub struct Matched<'a> {
    pub pairs: Vec<(&'a Row, Option<&'a Student>)>,
    /// Students of the roster with no submission.
    pub missing: Vec<&'a Student>,
}

impl Matched<'_> {
    /// Submissions no student of the roster owns.
    pub fn unknown(&self) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(_, s)| s.is_none())
            .map(|(r, _)| r.name.as_str())
            .collect()
    }
}

/// A row's grade for the LMS: its score, or nothing when pglab itself failed on it (no
/// verdict on the work: an empty cell leaves the gradebook as it was).
fn grade_cell(row: &Row) -> String {
    if row.grader_failed {
        String::new()
    } else {
        row.score.to_string()
    }
}

/// The feedback of a row for the LMS: its score and its first failure in plain words.
fn feedback(row: &Row) -> String {
    if row.grader_failed {
        return "not graded: pglab failed on this submission; it is graded again".into();
    }
    match row.first_failure() {
        None if row.passed() => format!("{}/{}: every check passed", row.score, row.max_score),
        None => format!("{}/{}", row.score, row.max_score),
        Some(f) => format!("{}/{}; first failure: {f}", row.score, row.max_score),
    }
}

/// Moodle's grade import (Grades → Import → CSV file): a header row; at import the teacher
/// maps "Email address" (or "ID number") to the user, the assignment column to the grade
/// item and "Feedback" to its feedback. A student without a submission gets 0 and says so.
pub fn moodle_csv(m: &Matched, assignment: &str) -> String {
    let mut s = format!(
        "Full name,Email address,ID number,{},Feedback\n",
        csv_cell(assignment)
    );
    for (row, st) in m.pairs.iter().filter_map(|(r, s)| Some((r, (*s)?))) {
        s.push_str(&format!(
            "{},{},{},{},{}\n",
            csv_cell(&st.name),
            csv_cell(&st.email),
            csv_cell(&st.lms_id),
            grade_cell(row),
            csv_cell(&feedback(row))
        ));
    }
    for st in &m.missing {
        s.push_str(&format!(
            "{},{},{},0,no submission\n",
            csv_cell(&st.name),
            csv_cell(&st.email),
            csv_cell(&st.lms_id)
        ));
    }
    s
}

/// Canvas's gradebook import (Grades → Import): the columns Student, ID, SIS User ID, SIS
/// Login ID, Section, then the assignment (a new name makes a new assignment). Canvas takes
/// no feedback from this file; the report cards carry it.
pub fn canvas_csv(m: &Matched, assignment: &str) -> String {
    let mut s = format!(
        "Student,ID,SIS User ID,SIS Login ID,Section,{}\n",
        csv_cell(assignment)
    );
    let line = |st: &Student, score: String| {
        format!(
            "{},{},{},{},{},{score}\n",
            csv_cell(&st.name),
            csv_cell(&st.lms_id),
            csv_cell(&st.sis_id),
            csv_cell(&st.email),
            csv_cell(&st.section)
        )
    };
    for (row, st) in m.pairs.iter().filter_map(|(r, s)| Some((r, (*s)?))) {
        s.push_str(&line(st, grade_cell(row)));
    }
    for st in &m.missing {
        s.push_str(&line(st, "0".into()));
    }
    s
}

/// One submission's result as GitHub Classroom's autograding reporter reads a runner's
/// (`{"version": 1, "status", "max_score", "tests": [{"name", "status", "score",
/// "max_score", "message"}]}`, base64 in the step's `result` output): one test per check
/// group, worth its rubric points. A row of pglab's own failure is "error", not "fail".
pub fn classroom_json(row: &Row, rubric: &Rubric) -> serde_json::Value {
    let tests: Vec<serde_json::Value> = row
        .cells
        .iter()
        .map(|c| {
            let (got, max) = rubric.cell_points(c);
            let status = match (c.status, row.grader_failed) {
                (_, true) => "error",
                (Status::Passed, _) => "pass",
                _ => "fail",
            };
            serde_json::json!({
                "name": c.group,
                "status": status,
                "score": got,
                "max_score": max,
                "message": c.why,
                "test_code": format!("pglab grade: check group {}", c.group),
                "filename": "",
                "line_no": 0,
                "duration": 0,
            })
        })
        .collect();
    let status = if row.grader_failed {
        "error"
    } else if row.passed() {
        "pass"
    } else {
        "fail"
    };
    serde_json::json!({
        "version": 1,
        "status": status,
        "max_score": row.max_score,
        "tests": tests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, statuses: &[Status]) -> Row {
        let mut r = Row::of_statuses(name, statuses, "=no slot, \"node2\"");
        rubric().apply(std::slice::from_mut(&mut r));
        r
    }

    fn rubric() -> Rubric {
        toml::from_str("[points]\nprovisioned = 10\nreplicate = 50\nbackup = 40\n").unwrap()
    }

    /// GitHub Classroom's roster export, matched by login and by `<assignment>-<login>`
    /// repositories; a submission nobody owns and a student without one are both listed.
    #[test]
    fn a_classroom_roster_matches_logins_and_lists_who_is_missing_on_either_side() {
        let roster = Roster::parse(
            "\u{feff}\"identifier\",\"github_username\",\"github_id\",\"name\"\n\"ann@uni.example\",\"Ann-Dev\",\"11\",\"Ann Smith\"\n\"bob@uni.example\",\"bobby\",\"12\",\"Bob Jones\"\n\"cid@uni.example\",\"\",\"\",\"Cid Never\"\n",
        )
        .unwrap();
        assert_eq!(roster.students.len(), 3);
        assert_eq!(roster.students[0].github, "Ann-Dev");
        let rows = [
            row("pg-replication-ann-dev", &[Status::Passed; 3]),
            row("bobby", &[Status::Passed, Status::Failed, Status::Skipped]),
            row(
                "stranger",
                &[Status::Failed, Status::Skipped, Status::Skipped],
            ),
        ];
        let m = roster.matched(&rows);
        assert_eq!(m.pairs[0].1.unwrap().name, "Ann Smith");
        assert_eq!(m.pairs[1].1.unwrap().name, "Bob Jones");
        assert_eq!(m.unknown(), ["stranger"]);
        let missing: Vec<&str> = m.missing.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(missing, ["Cid Never"]);
        assert!(Roster::parse("name,email\nAnn,a@x\n").is_err());
        // A login that ends another's: each repository goes to its own student.
        let roster = Roster::parse("name,github_username\nS,smith\nJ,john-smith\n").unwrap();
        let rows = [
            row("hw-john-smith", &[Status::Passed]),
            row("hw-smith", &[Status::Failed]),
        ];
        let m = roster.matched(&rows);
        assert_eq!(m.pairs[0].1.unwrap().name, "J");
        assert_eq!(m.pairs[1].1.unwrap().name, "S");
        assert!(m.missing.is_empty());
        let mut failed = rows[0].clone();
        failed.grader_failed = true;
        let m = roster.matched(std::slice::from_ref(&failed));
        assert!(
            canvas_csv(&m, "A").contains("J,,,,,\n"),
            "{}",
            canvas_csv(&m, "A")
        );
    }

    /// The LMS files: Moodle's columns with the feedback (a student's text cannot become a
    /// formula), Canvas's five leading columns; every file parses as CSV with its columns.
    #[test]
    fn moodle_and_canvas_files_have_their_columns() {
        let roster = Roster::parse(
            "name,email,lms_id,sis_id,section,folder\nAnn Smith,ann@uni.example,101,S-1,A,ann\n=HYPERLINK(\"x\"),cid@uni.example,103,S-3,A,cid\n",
        )
        .unwrap();
        let rows = [row(
            "ann",
            &[Status::Passed, Status::Failed, Status::Skipped],
        )];
        let m = roster.matched(&rows);
        let moodle = moodle_csv(&m, "Replication homework");
        let lines: Vec<&str> = moodle.lines().collect();
        assert_eq!(
            lines[0],
            "Full name,Email address,ID number,Replication homework,Feedback"
        );
        assert_eq!(
            lines[1],
            "Ann Smith,ann@uni.example,101,10,\"10/100; first failure: replicate: =no slot, \"\"node2\"\"\""
        );
        assert_eq!(
            lines[2],
            "\"'=HYPERLINK(\"\"x\"\")\",cid@uni.example,103,0,no submission"
        );
        let canvas = canvas_csv(&m, "Replication homework");
        let lines: Vec<&str> = canvas.lines().collect();
        assert_eq!(
            lines[0],
            "Student,ID,SIS User ID,SIS Login ID,Section,Replication homework"
        );
        assert_eq!(lines[1], "Ann Smith,101,S-1,ann@uni.example,A,10");
        for text in [&moodle, &canvas] {
            let mut r = csv::Reader::from_reader(text.as_bytes());
            let width = r.headers().unwrap().len();
            for rec in r.records() {
                assert_eq!(rec.unwrap().len(), width, "{text}");
            }
        }
    }

    #[test]
    fn the_classroom_result_has_a_test_per_group_worth_its_points() {
        let r = row("ann", &[Status::Passed, Status::Failed, Status::Skipped]);
        let j = classroom_json(&r, &rubric());
        assert_eq!(j["version"], 1);
        assert_eq!(j["status"], "fail");
        assert_eq!(j["max_score"], 100.0);
        let t = j["tests"].as_array().unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0]["name"].as_str(), t[0]["status"].as_str()),
            (Some("provisioned"), Some("pass"))
        );
        assert_eq!(
            (t[0]["score"].as_f64(), t[0]["max_score"].as_f64()),
            (Some(10.0), Some(10.0))
        );
        assert_eq!(
            (t[1]["status"].as_str(), t[1]["score"].as_f64()),
            (Some("fail"), Some(0.0))
        );
        assert_eq!(t[1]["message"], "=no slot, \"node2\"");
        let mut failed = r.clone();
        failed.grader_failed = true;
        assert_eq!(classroom_json(&failed, &rubric())["status"], "error");
    }
}
