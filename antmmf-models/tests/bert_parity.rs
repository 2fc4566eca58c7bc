//! BERT parity with transformers 5.24 (fixtures/README.md sections 4 and 8).

use crate::import_support;

use antmmf_models::bert::{BertConfig, BertForPreTraining};
use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use burn::tensor::activation::log_softmax;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use import_support::{B, assert_close, asset, fixture, json};

fn tiny_config() -> BertConfig {
    serde_json::from_value(json("bert_tiny.json")["config"].clone()).expect("tiny BERT config")
}

fn io() -> WeightFile {
    WeightFile::open(fixture("bert_io.safetensors")).expect("bert_io.safetensors")
}

/// Fixture `bert_weights.safetensors` + `bert_io.safetensors`: last_hidden_state, every
/// `hidden_states.*`, pooler_output; atol 1e-4, rtol 1e-4.
#[test]
fn tiny_bert_encoder_matches_transformers() {
    let device = Default::default();
    let (bert, report) = WeightFile::open(fixture("bert_weights.safetensors"))
        .expect("weights")
        .load_into(
            tiny_config().init::<B>(&device),
            &KeyMap::hf_bert(),
            &LoadOptions::default(),
        )
        .expect("load tiny BERT");
    assert_eq!(report.loaded.len(), 39, "{report}");
    assert!(report.unexpected.is_empty(), "{report}");

    let io = io();
    let out = bert.forward(
        io.int_tensor::<B, 2>("input_ids", &device).unwrap(),
        Some(io.int_tensor("token_type_ids", &device).unwrap()),
        Some(io.int_tensor("attention_mask", &device).unwrap()),
        true,
    );
    assert_close(
        "last_hidden_state",
        out.last_hidden_state,
        io.tensor("last_hidden_state", &device).unwrap(),
        1e-4,
        1e-4,
    );
    let stored: Vec<String> = io
        .keys()
        .filter(|k| k.starts_with("hidden_states."))
        .map(str::to_string)
        .collect();
    assert_eq!(stored.len(), out.hidden_states.len());
    for key in stored {
        let i: usize = key["hidden_states.".len()..].parse().unwrap();
        assert_close(
            &key,
            out.hidden_states[i].clone(),
            io.tensor(&key, &device).unwrap(),
            1e-4,
            1e-4,
        );
    }
    assert_close(
        "pooler_output",
        out.pooled.expect("pooler"),
        io.tensor("pooler_output", &device).unwrap(),
        1e-4,
        1e-4,
    );
}

/// Fixture `bert_mlm_weights.safetensors` (BertForMaskedLM, decoder tied) + `bert_io`:
/// mlm_last_hidden_state (atol 1e-4, rtol 1e-4), mlm_logits (atol 2e-4), mlm_loss (rtol 1e-5).
#[test]
fn tiny_bert_mlm_head_matches_transformers() {
    let device = Default::default();
    let (model, report): (BertForPreTraining<B>, _) =
        WeightFile::open(fixture("bert_mlm_weights.safetensors"))
            .expect("weights")
            .load_into(
                tiny_config().init_with_heads(false, &device),
                &KeyMap::hf_bert_with_heads(),
                &LoadOptions::default(),
            )
            .expect("load tiny BERT MLM");
    // 44 keys: the two tied decoder copies are ignored, everything else loads.
    assert_eq!(report.loaded.len(), 42, "{report}");
    assert_eq!(
        report.ignored,
        [
            "cls.predictions.decoder.bias",
            "cls.predictions.decoder.weight"
        ]
    );
    assert!(report.unexpected.is_empty(), "{report}");

    let io = io();
    let out = model.forward(
        io.int_tensor::<B, 2>("mlm_input_ids", &device).unwrap(),
        Some(io.int_tensor("token_type_ids", &device).unwrap()),
        Some(io.int_tensor("attention_mask", &device).unwrap()),
        false,
    );
    assert_close(
        "mlm_last_hidden_state",
        out.encoder.last_hidden_state,
        io.tensor("mlm_last_hidden_state", &device).unwrap(),
        1e-4,
        1e-4,
    );
    assert_close(
        "mlm_logits",
        out.mlm_logits.clone(),
        io.tensor("mlm_logits", &device).unwrap(),
        2e-4,
        0.0,
    );

    // Mean cross-entropy over labels != -100.
    let labels: Tensor<B, 2, Int> = io.int_tensor("mlm_labels", &device).unwrap();
    let [b, l, v] = out.mlm_logits.dims();
    let labels = labels.reshape([b * l]);
    let counted = labels.clone().not_equal_elem(-100);
    let safe = labels
        .mask_fill(counted.clone().bool_not(), 0)
        .reshape([b * l, 1]);
    let nll = log_softmax(out.mlm_logits.reshape([b * l, v]), 1)
        .gather(1, safe)
        .reshape([b * l])
        .neg();
    let counted = counted.float();
    let loss = (nll * counted.clone()).sum() / counted.sum();
    // The scalar is also in bert_tiny.json (full f64 print of the f32 value).
    let want = json("bert_tiny.json")["mlm_loss"]
        .as_f64()
        .expect("mlm_loss") as f32;
    let got: f32 = loss.into_scalar().elem();
    assert!(
        ((got - want) / want).abs() <= 1e-5,
        "mlm_loss: got {got}, expected {want} (rtol 1e-5)"
    );
    println!("mlm_loss: got {got}, expected {want}");
}

/// A config with fewer layers than the checkpoint loads the first layers: with
/// `num_hidden_layers = 1`, the output equals fixture `hidden_states.1` (atol 1e-4, rtol 1e-4)
/// and the second layer's keys are reported unexpected.
#[test]
fn fewer_layers_than_checkpoint_use_its_first_layers() {
    let device = Default::default();
    let config = BertConfig {
        num_hidden_layers: 1,
        ..tiny_config()
    };
    let (bert, report) = WeightFile::open(fixture("bert_weights.safetensors"))
        .unwrap()
        .load_into(
            config.init::<B>(&device),
            &KeyMap::hf_bert(),
            &LoadOptions::default(),
        )
        .unwrap();
    assert_eq!(report.unexpected.len(), 16, "{report}");
    assert!(
        report
            .unexpected
            .iter()
            .all(|k| k.starts_with("encoder.layer.1."))
    );
    let io = io();
    let out = bert.forward(
        io.int_tensor::<B, 2>("input_ids", &device).unwrap(),
        Some(io.int_tensor("token_type_ids", &device).unwrap()),
        Some(io.int_tensor("attention_mask", &device).unwrap()),
        false,
    );
    assert_close(
        "1-layer last_hidden_state vs hidden_states.1",
        out.last_hidden_state,
        io.tensor("hidden_states.1", &device).unwrap(),
        1e-4,
        1e-4,
    );
}

/// Real all-MiniLM-L6-v2 (assets/minilm) against fixtures/minilm/minilm_l6_v2_reference.*:
/// last hidden state, every hidden state, L2-normalised masked-mean sentence embeddings and their
/// cosine matrix, all within atol 1e-4.
#[test]
fn minilm_l6_v2_matches_sentence_transformers() {
    let device = Default::default();
    asset("minilm/model.safetensors");
    let pretrained = antmmf_models::bert::Bert::<B>::from_pretrained(
        asset("minilm/config.json").parent().unwrap(),
        false,
        &device,
    )
    .expect("load MiniLM folder");
    let (config, bert, report) = (pretrained.config, pretrained.model, pretrained.report);
    assert_eq!(
        (
            config.vocab_size,
            config.hidden_size,
            config.num_hidden_layers
        ),
        (30522, 384, 6)
    );
    assert!(report.missing.is_empty(), "{report}");

    let reference = json("minilm/minilm_l6_v2_reference.json");
    let ids = |key: &str| -> Tensor<B, 2, Int> {
        let rows: Vec<Vec<i64>> = serde_json::from_value(reference[key].clone()).unwrap();
        let (b, l) = (rows.len(), rows[0].len());
        let flat: Vec<i64> = rows.into_iter().flatten().collect();
        Tensor::from_data(TensorData::new(flat, [b, l]), &device)
    };
    let mask = ids("attention_mask");
    let out = bert.forward(
        ids("input_ids"),
        Some(ids("token_type_ids")),
        Some(mask.clone()),
        true,
    );
    let io = WeightFile::open(fixture("minilm/minilm_l6_v2_reference.safetensors")).unwrap();
    assert_close(
        "minilm last_hidden_state",
        out.last_hidden_state.clone(),
        io.tensor("last_hidden_state", &device).unwrap(),
        1e-4,
        0.0,
    );
    let stored: Vec<String> = io
        .keys()
        .filter(|k| k.starts_with("hidden_states."))
        .map(str::to_string)
        .collect();
    assert_eq!(stored.len(), out.hidden_states.len());
    for key in stored {
        let i: usize = key["hidden_states.".len()..].parse().unwrap();
        assert_close(
            &format!("minilm {key}"),
            out.hidden_states[i].clone(),
            io.tensor(&key, &device).unwrap(),
            1e-4,
            0.0,
        );
    }

    // sentence-transformers pooling: masked mean, then L2 normalisation.
    let [b, l, h] = out.last_hidden_state.dims();
    let m = mask.float().reshape([b, l, 1]);
    let summed = (out.last_hidden_state * m.clone())
        .sum_dim(1)
        .reshape([b, h]);
    let mean = summed / m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
    let norm = mean
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    let embedding = mean / norm;
    assert_close(
        "minilm sentence_embedding",
        embedding.clone(),
        io.tensor("sentence_embedding", &device).unwrap(),
        1e-4,
        0.0,
    );
    let cosine: Vec<Vec<f32>> =
        serde_json::from_value(reference["sentence_cosine_matrix"].clone()).unwrap();
    let n = cosine.len();
    let expected = Tensor::<B, 2>::from_data(
        TensorData::new(cosine.into_iter().flatten().collect::<Vec<_>>(), [n, n]),
        &device,
    );
    assert_close(
        "minilm cosine matrix",
        embedding.clone().matmul(embedding.transpose()),
        expected,
        1e-4,
        0.0,
    );
}

/// Padded keys get a large finite negative score: a row whose keys are all padding still yields
/// finite outputs (fixture tiny BERT weights, all-zero attention mask).
#[test]
fn fully_padded_rows_stay_finite() {
    let device = Default::default();
    let (bert, _) = WeightFile::open(fixture("bert_weights.safetensors"))
        .unwrap()
        .load_into(
            tiny_config().init::<B>(&device),
            &KeyMap::hf_bert(),
            &LoadOptions::default(),
        )
        .unwrap();
    let ids = Tensor::<B, 2, Int>::from_data([[2, 5, 3, 0]], &device);
    let mask = Tensor::<B, 2, Int>::zeros([1, 4], &device);
    let out = bert.forward(ids, None, Some(mask), false);
    let values: Vec<f32> = out.last_hidden_state.into_data().to_vec().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
}

/// The cross-encoder entry point: word embeddings fed back through `forward_embeds` with explicit
/// positions give `forward`'s output (fixture tiny BERT, atol 1e-6); restarting positions on a
/// suffix (as for UniVL's visual tokens) changes only the outputs, not the API.
#[test]
fn forward_embeds_matches_forward_on_token_embeddings() {
    let device = Default::default();
    let (bert, _) = WeightFile::open(fixture("bert_weights.safetensors"))
        .unwrap()
        .load_into(
            tiny_config().init::<B>(&device),
            &KeyMap::hf_bert(),
            &LoadOptions::default(),
        )
        .unwrap();
    let io = io();
    let ids: Tensor<B, 2, Int> = io.int_tensor("input_ids", &device).unwrap();
    let types: Tensor<B, 2, Int> = io.int_tensor("token_type_ids", &device).unwrap();
    let mask: Tensor<B, 2, Int> = io.int_tensor("attention_mask", &device).unwrap();
    let [b, l] = ids.dims();
    let direct = bert.forward(ids.clone(), Some(types.clone()), Some(mask.clone()), false);
    let positions = Tensor::<B, 1, Int>::arange(0..l as i64, &device)
        .reshape([1, l])
        .expand([b, l]);
    let via_embeds = bert.forward_embeds(
        bert.embeddings.word_embeddings(ids.clone()),
        Some(types.clone()),
        Some(positions),
        Some(mask.clone()),
        false,
    );
    assert_close(
        "forward_embeds vs forward",
        via_embeds.last_hidden_state,
        direct.last_hidden_state.clone(),
        1e-6,
        0.0,
    );
    // Positions restarting at 0 on the second half (the visual part of the cross encoder).
    let half = l / 2;
    let restart = Tensor::cat(
        vec![
            Tensor::<B, 1, Int>::arange(0..half as i64, &device),
            Tensor::<B, 1, Int>::arange(0..(l - half) as i64, &device),
        ],
        0,
    )
    .reshape([1, l])
    .expand([b, l]);
    let restarted = bert.forward_embeds(
        bert.embeddings.word_embeddings(ids),
        Some(types),
        Some(restart),
        Some(mask),
        false,
    );
    let diff: f32 = (restarted.last_hidden_state - direct.last_hidden_state)
        .abs()
        .max()
        .into_scalar()
        .elem();
    assert!(diff > 1e-3, "restarted positions must change the output");
}
