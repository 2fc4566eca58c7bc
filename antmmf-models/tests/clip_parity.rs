//! CLIP parity with transformers 5.24 `CLIPVisionModel` / `CLIPTextModel` (fixtures/README.md
//! section 2).

use crate::import_support;

use antmmf_models::clip::{ClipTextConfig, ClipVisionConfig};
use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use import_support::{B, assert_close, fixture, json};

/// Every `hidden_states.*` tensor of an io file against ours (atol 1e-4, rtol 1e-4).
fn check_hidden_states(
    tower: &str,
    io: &WeightFile,
    ours: &[burn::tensor::Tensor<B, 3>],
    device: &burn::backend::flex::FlexDevice,
) {
    let stored: Vec<String> = io
        .keys()
        .filter(|k| k.starts_with("hidden_states."))
        .map(str::to_string)
        .collect();
    assert_eq!(stored.len(), ours.len(), "{tower}: number of hidden states");
    for key in stored {
        let i: usize = key["hidden_states.".len()..].parse().unwrap();
        assert_close(
            &format!("{tower} {key}"),
            ours[i].clone(),
            io.tensor(&key, device).unwrap(),
            1e-4,
            1e-4,
        );
    }
}

/// Fixture clip_vision_{weights,io}.safetensors: last_hidden_state, pooler_output and every
/// hidden state, atol 1e-4, rtol 1e-4.
#[test]
fn clip_vision_matches_transformers() {
    let device = Default::default();
    let config: ClipVisionConfig =
        serde_json::from_value(json("clip_vision.json")["config"].clone()).unwrap();
    let (model, report) = WeightFile::open(fixture("clip_vision_weights.safetensors"))
        .unwrap()
        .load_into(
            config.init::<B>(&device),
            &KeyMap::hf_clip_vision(),
            &LoadOptions::default(),
        )
        .expect("load CLIP vision");
    assert_eq!(report.loaded.len(), 39, "{report}");
    assert!(report.unexpected.is_empty(), "{report}");

    let io = WeightFile::open(fixture("clip_vision_io.safetensors")).unwrap();
    let out = model.forward(io.tensor("pixel_values", &device).unwrap(), true);
    assert_close(
        "vision last_hidden_state",
        out.last_hidden_state,
        io.tensor("last_hidden_state", &device).unwrap(),
        1e-4,
        1e-4,
    );
    assert_close(
        "vision pooler_output",
        out.pooled,
        io.tensor("pooler_output", &device).unwrap(),
        1e-4,
        1e-4,
    );
    check_hidden_states("vision", &io, &out.hidden_states, &device);
}

/// Fixture clip_text_{weights,io}.safetensors: causal-only outputs, the
/// `*_with_attention_mask` outputs, and every hidden state, atol 1e-4, rtol 1e-4.
#[test]
fn clip_text_matches_transformers() {
    let device = Default::default();
    let config: ClipTextConfig =
        serde_json::from_value(json("clip_text.json")["config"].clone()).unwrap();
    assert_eq!(config.eos_token_id, 999);
    let (model, report) = WeightFile::open(fixture("clip_text_weights.safetensors"))
        .unwrap()
        .load_into(
            config.init::<B>(&device),
            &KeyMap::hf_clip_text(),
            &LoadOptions::default(),
        )
        .expect("load CLIP text");
    assert_eq!(report.loaded.len(), 36, "{report}");
    assert!(report.unexpected.is_empty(), "{report}");

    let io = WeightFile::open(fixture("clip_text_io.safetensors")).unwrap();
    let ids = io.int_tensor::<B, 2>("input_ids", &device).unwrap();
    let out = model.forward(ids.clone(), None, true);
    assert_close(
        "text last_hidden_state",
        out.last_hidden_state,
        io.tensor("last_hidden_state", &device).unwrap(),
        1e-4,
        1e-4,
    );
    assert_close(
        "text pooler_output",
        out.pooled,
        io.tensor("pooler_output", &device).unwrap(),
        1e-4,
        1e-4,
    );
    check_hidden_states("text", &io, &out.hidden_states, &device);

    let mask = io.int_tensor::<B, 2>("attention_mask", &device).unwrap();
    let masked = model.forward(ids, Some(mask), false);
    assert_close(
        "text last_hidden_state_with_attention_mask",
        masked.last_hidden_state,
        io.tensor("last_hidden_state_with_attention_mask", &device)
            .unwrap(),
        1e-4,
        1e-4,
    );
    assert_close(
        "text pooler_output_with_attention_mask",
        masked.pooled,
        io.tensor("pooler_output_with_attention_mask", &device)
            .unwrap(),
        1e-4,
        1e-4,
    );
}
