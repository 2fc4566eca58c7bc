//! antmmf-models: the backbones and heads AntMMF uses, proven equal to their PyTorch references.
//!
//! Every module is generic over Burn's `Backend`; shapes are documented on every `forward`.

pub mod bert;
pub mod clip;
pub mod efficientnet;
pub mod import;
pub mod losses;
pub mod ops;
pub mod pvt_v2;
pub mod resnet;
pub mod transformer;
pub mod univl;
pub mod video_swin;
