//! Unit tests of the student: shapes, determinism, the vocabulary remap, save/load, the KV
//! cache against full forward passes, and typed errors on bad input.

use super::*;

/// A tiny config over a base vocabulary of 40 ids.
fn tiny() -> StudentConfig {
    StudentConfig {
        base_vocab_size: 40,
        context: 12,
        d_model: 16,
        heads: 2,
        layers: 2,
        mlp: 24,
        tie_embeddings: true,
        batch: 4,
        epochs: 3,
        learning_rate: 1e-2,
        weight_decay: 0.01,
        grad_clip: 1.0,
        seed: 3,
    }
}

/// 30 texts of 10 to 19 ids in 5..35, from a fixed pseudo-random walk.
fn corpus() -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    (0..30)
        .map(|_| {
            let n = rng.gen_range(10..20);
            let mut x = rng.gen_range(5..35u32);
            (0..n)
                .map(|_| {
                    x = 5 + (x * 7 + rng.gen_range(0..3)) % 30;
                    x
                })
                .collect()
        })
        .collect()
}

fn trained() -> Student {
    Student::train(&corpus(), &tiny(), &mut |_| {}).unwrap()
}

fn values(s: &Student) -> Vec<(String, Vec<f32>)> {
    s.parameters
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect()
}

#[test]
fn shapes_and_parameter_count() {
    let s = trained();
    let c = tiny();
    let v = s.vocab().len();
    let (d, m, l) = (c.d_model, c.mlp, c.layers);
    let per_block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (m * d + m) + (d * m + d);
    // Embedding, positions, blocks, final norm (the output layer is the embedding).
    assert_eq!(
        s.parameter_count(),
        v * d + c.context * d + l * per_block + 2 * d
    );
    let mut untied = tiny();
    untied.tie_embeddings = false;
    let u = Student::train(&corpus(), &untied, &mut |_| {}).unwrap();
    assert_eq!(u.parameter_count(), s.parameter_count() + v * d);
    // The vocabulary is the corpus' distinct ids plus the two reserved ones.
    let mut seen: Vec<u32> = corpus().concat();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(s.vocab().ids(), seen.as_slice());
    assert_eq!(v, seen.len() + 2);
    let input = &corpus()[0];
    let p = s.top1_predictions(input).unwrap();
    assert_eq!(p.len(), input.len());
    assert!(p.iter().all(|id| seen.contains(id)));
    assert!(s.top1_predictions(&[]).unwrap().is_empty());
    let texts = s.generate(7, 11, 1.0, 5).unwrap();
    assert_eq!(texts.len(), 7);
    for t in &texts {
        assert!(!t.is_empty() && t.len() <= 11);
        assert!(t.iter().all(|id| seen.contains(id)), "{t:?}");
    }
    assert!(s.generate(0, 5, 1.0, 0).unwrap().is_empty());
}

#[test]
fn training_lowers_the_loss() {
    let mut config = tiny();
    config.epochs = 25;
    let mut losses = Vec::new();
    Student::train(&corpus(), &config, &mut |p| {
        assert!(p.step <= p.steps && p.epoch < 25);
        losses.push((p.step, p.loss))
    })
    .unwrap();
    let steps = losses.len();
    assert_eq!(losses.last().unwrap().0, steps);
    let first = losses[0].1;
    let last: f32 = losses[steps - 5..].iter().map(|x| x.1).sum::<f32>() / 5.0;
    // Uniform over ~32 ids is ln 32 = 3.47 nats; the walk has 3 successors per id (ln 3 = 1.1).
    assert!(first > 3.0, "first loss {first}");
    assert!(last < 2.0, "last loss {last}");
}

#[test]
fn the_same_seed_gives_the_same_student() {
    let a = trained();
    let b = trained();
    assert_eq!(values(&a), values(&b));
    assert_eq!(
        a.generate(5, 10, 1.0, 9).unwrap(),
        b.generate(5, 10, 1.0, 9).unwrap()
    );
    let mut other = tiny();
    other.seed = 4;
    let c = Student::train(&corpus(), &other, &mut |_| {}).unwrap();
    assert_ne!(values(&a), values(&c));
    // Sampling depends on its own seed.
    assert_ne!(
        a.generate(5, 10, 1.0, 9).unwrap(),
        a.generate(5, 10, 1.0, 10).unwrap()
    );
}

#[test]
fn the_vocabulary_maps_ids_both_ways() {
    let corpus = vec![vec![9, 3, 9, 27], vec![], vec![14]];
    let v = StudentVocab::from_corpus(&corpus, 30).unwrap();
    assert_eq!(v.ids(), &[3, 9, 14, 27]);
    assert_eq!(v.len(), 6);
    for &id in v.ids() {
        let s = v.student_id(id);
        assert!(s >= FIRST);
        assert_eq!(v.base_id(s), Some(id));
    }
    let all: Vec<u32> = (0..30).collect();
    let encoded = v.encode(&all).unwrap();
    let decoded = v.decode(&encoded);
    for (id, back) in all.iter().zip(decoded) {
        let known = v.ids().contains(id);
        assert_eq!(back, known.then_some(*id), "id {id}");
    }
    assert_eq!(v.decode(&[BOUNDARY, UNKNOWN, 99]), vec![None, None, None]);
    assert!(matches!(v.encode(&[30]), Err(LmError::InvalidInput(_))));
    assert_eq!(StudentVocab::from_ids(vec![3, 9, 14, 27], 30).unwrap(), v);
    assert!(StudentVocab::from_ids(vec![9, 3], 30).is_err());
    assert!(StudentVocab::from_ids(vec![3, 30], 30).is_err());
    assert!(StudentVocab::from_ids(vec![], 30).is_err());
}

#[test]
fn save_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.safetensors");
    let a = trained();
    a.save(&path).unwrap();
    let b = Student::load(&path).unwrap();
    assert_eq!(b.config(), a.config());
    assert_eq!(b.vocab(), a.vocab());
    assert_eq!(values(&b), values(&a));
    let input = &corpus()[3];
    assert_eq!(
        b.top1_predictions(input).unwrap(),
        a.top1_predictions(input).unwrap()
    );
    assert_eq!(
        b.generate(4, 9, 0.7, 2).unwrap(),
        a.generate(4, 9, 0.7, 2).unwrap()
    );
    // Saving the loaded student writes the same bytes.
    let again = dir.path().join("t.safetensors");
    b.save(&again).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn load_refuses_what_is_not_a_student() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.safetensors");
    assert!(matches!(Student::load(&missing), Err(LmError::Io { .. })));
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not safetensors").unwrap();
    assert!(matches!(Student::load(&junk), Err(LmError::Corrupt { .. })));
    // A safetensors file of something else.
    let other = dir.path().join("other.safetensors");
    let t = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    t.save_safetensors("x", &other).unwrap();
    let err = Student::load(&other).unwrap_err();
    assert!(
        matches!(&err, LmError::Corrupt { message, .. } if message.contains("student.config")),
        "{err}"
    );
}

#[test]
fn cached_generation_matches_full_forward_passes() {
    // Greedy generation runs the network one position at a time with a KV cache; reading the
    // generated text runs it over whole prefixes. Both must pick the same tokens.
    let s = trained();
    for text in s.generate(6, 11, 0.0, 0).unwrap() {
        for k in 1..text.len() {
            let p = s.top1_predictions(&text[..k]).unwrap();
            assert_eq!(p[k - 1], text[k], "text {text:?} at {k}");
        }
    }
}

#[test]
fn long_inputs_are_read_in_sliding_windows() {
    let s = trained();
    let c = tiny().context;
    let input: Vec<u32> = corpus().concat()[..3 * c + 5].to_vec();
    let p = s.top1_predictions(&input).unwrap();
    assert_eq!(p.len(), input.len());
    // The first context - 1 predictions see the whole prefix: as if read alone.
    assert_eq!(
        &p[..c - 1],
        s.top1_predictions(&input[..c - 1]).unwrap().as_slice()
    );
    // A later one sees the window that ends at it, from the window's start: the same as the
    // network run on exactly that window (no boundary token in front).
    let seq: Vec<u32> = std::iter::once(BOUNDARY)
        .chain(s.vocab().encode(&input).unwrap())
        .collect();
    let stride = c / 2;
    for j in [c, c + 3, 2 * c + 1, input.len() - 1] {
        let pos = j + 1; // the position of input[j] in seq
                         // The window [start, start + c) that predicts it: the one with pos in its last half.
        let start = ((pos - c) / stride + 1) * stride;
        let end = (start + c).min(seq.len());
        let ids = net::ids_tensor(seq[start..end].to_vec(), 1, end - start).unwrap();
        let h = s.net.hidden(&ids, 0, None).unwrap();
        let h = h.reshape((end - start, tiny().d_model)).unwrap();
        let row = net::rows(&s.net.logits(&h.narrow(0, pos - start, 1).unwrap()).unwrap())
            .unwrap()
            .remove(0);
        let best = argmax(&row[FIRST as usize..]) as u32 + FIRST;
        assert_eq!(p[j], s.vocab().base_id(best).unwrap(), "position {j}");
    }
}

#[test]
fn bad_input_gives_typed_errors() {
    let c = tiny();
    let invalid_input = |r: Result<Student>| matches!(r, Err(LmError::InvalidInput(_)));
    assert!(invalid_input(Student::train(&[], &c, &mut |_| {})));
    assert!(invalid_input(Student::train(
        &[vec![], vec![]],
        &c,
        &mut |_| {}
    )));
    let err = Student::train(&[vec![1, 2, 40]], &c, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("token id 40 at position 2"),
        "{err}"
    );
    // Shorter than one window of context + 1.
    let err = Student::train(&[vec![1, 2, 3]], &c, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, LmError::InvalidInput(m) if m.contains("smaller context")),
        "{err}"
    );
    for change in [
        (|c: &mut StudentConfig| c.heads = 3) as fn(&mut StudentConfig),
        |c| c.d_model = 0,
        |c| c.context = 1,
        |c| c.epochs = 0,
        |c| c.learning_rate = f64::NAN,
        |c| c.weight_decay = -1.0,
        |c| c.grad_clip = -1.0,
        |c| c.grad_clip = f64::INFINITY,
        |c| c.base_vocab_size = 0,
    ] {
        let mut bad = tiny();
        change(&mut bad);
        let err = Student::train(&corpus(), &bad, &mut |_| {}).unwrap_err();
        assert!(matches!(err, LmError::InvalidOption(_)), "{err}");
    }
    let s = trained();
    let err = s.top1_predictions(&[5, 6, 40]).unwrap_err();
    assert!(matches!(err, LmError::InvalidInput(_)), "{err}");
    assert!(matches!(
        s.generate(1, c.context, 1.0, 0),
        Err(LmError::InvalidOption(_))
    ));
    for t in [-1.0, f64::INFINITY, f64::NAN] {
        assert!(matches!(
            s.generate(1, 5, t, 0),
            Err(LmError::InvalidOption(_))
        ));
    }
    // Unseen (but valid) ids read as unknown and still get predictions.
    assert_eq!(s.top1_predictions(&[0, 1, 39]).unwrap().len(), 3);
}

#[test]
fn gradients_are_clipped_to_the_global_norm() {
    let a = Var::from_vec(vec![1f32, 2.0], 2, &Device::Cpu).unwrap();
    let b = Var::from_vec(vec![0.5f32], 1, &Device::Cpu).unwrap();
    let vars = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
    // loss = 3 a0 + 4 a1 + 12 b0: gradient (3, 4, 12), global norm 13.
    let w = Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap();
    let loss = |vars: &[(String, Var)]| {
        let la = (vars[0].1.as_tensor() * &w).unwrap().sum_all().unwrap();
        let lb = (vars[1].1.as_tensor() * 12.0).unwrap().sum_all().unwrap();
        (la + lb).unwrap()
    };
    let flat = |grads: &candle_core::backprop::GradStore| -> Vec<f32> {
        [&a, &b]
            .iter()
            .flat_map(|v| grads.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap())
            .collect()
    };
    for (max, expected) in [
        (1.0, vec![3.0 / 13.0, 4.0 / 13.0, 12.0 / 13.0]),
        (26.0, vec![3.0, 4.0, 12.0]),
        (0.0, vec![3.0, 4.0, 12.0]),
    ] {
        let mut grads = loss(&vars).backward().unwrap();
        clip_gradients(&mut grads, &vars, max).unwrap();
        let got = flat(&grads);
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-6, "max {max}: {got:?} vs {expected:?}");
        }
    }
}

#[test]
fn the_schedule_warms_up_and_decays() {
    let lr = |s| schedule(1.0, s, 10, 100);
    assert!((lr(0) - 0.1).abs() < 1e-12);
    assert!((lr(9) - 1.0).abs() < 1e-12);
    assert!((lr(10) - 1.0).abs() < 1e-12);
    assert!((lr(100) - 0.1).abs() < 1e-12);
    assert!((10..100).all(|s| lr(s + 1) <= lr(s)));
}

#[test]
fn sampling_respects_the_mask_and_the_temperature() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut w = Vec::new();
    // UNKNOWN has the largest logit and is never drawn; BOUNDARY only where allowed.
    let logits = [1.0f32, 9.0, 0.5, 0.0];
    assert_eq!(sample(&logits, FIRST, 0.0, &mut w, &mut rng), 2);
    assert_eq!(sample(&logits, BOUNDARY, 0.0, &mut w, &mut rng), 0);
    let draws: Vec<u32> = (0..4000)
        .map(|_| sample(&logits, FIRST, 1.0, &mut w, &mut rng))
        .collect();
    assert!(draws.iter().all(|&s| s == 2 || s == 3));
    // P(2) = e^0.5 / (e^0.5 + 1) = 0.622.
    let share = draws.iter().filter(|&&s| s == 2).count() as f64 / 4000.0;
    assert!((share - 0.6225).abs() < 0.03, "{share}");
}
