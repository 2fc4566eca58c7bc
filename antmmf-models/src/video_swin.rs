//! video_swin (in progress).
